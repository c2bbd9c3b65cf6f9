#include "probes/probe_session.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "probes/breakpoint_engine.h"
#include "probes/hit_context.h"
#include "probes/run_to_entry.h"
#include "probes/site_resolver.h"
#include "process/maps.h"
#include "process/tracee.h"

namespace dprobe::probes {
namespace {

// BEGIN/END run in dprobe, which has no target memory to read.
class NoMemory final : public runtime::MemoryReader {
 public:
  bool read(uint64_t, void*, size_t) override { return false; }
};

void print_site(std::FILE* out, pid_t pid, const ProbeSite& site) {
  for (const auto& name : site.probe_names) {
    fmt::print(out,
               "{}: pid {} address {:#x} ({} {}+{}, file address {:#x}), instruction '{}', "
               "mechanism {} (breakpoints through ptrace are the only mechanism in this build)\n",
               name, pid, site.address, site.file_path,
               site.function.empty() ? "?" : site.function, site.function_offset,
               site.file_vaddr, site.instruction.text, mechanism_name(site.mechanism));
  }
}

bool needs_libraries(const lang::CompiledScript& script, SiteResolver& resolver,
                     std::span<const process::Mapping> maps) {
  for (const auto& block : script.probes) {
    for (const auto& ap : block.attach_points) {
      if (ap.kind != lang::ProbeKind::Uprobe) continue;
      auto mapped = resolver.is_mapped(ap, maps);
      if (mapped && !*mapped) return true;
    }
  }
  return false;
}

// A launched command that cannot be probed must not run unprobed behind the user's back.
void discard_launched(std::unique_ptr<process::Tracee>& tracee) {
  pid_t pid = tracee->pid();
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 1000; ++i) {
    auto ev = tracee->next_event(100);
    if (!ev) break;
    if (ev->has_value() && ((*ev)->kind == process::EventKind::Exited ||
                            (*ev)->kind == process::EventKind::Killed)) {
      break;
    }
  }
  tracee.reset();
  ::waitpid(pid, nullptr, WNOHANG);
}

class Session {
 public:
  Session(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
          const SessionOptions& options, const std::atomic<bool>& stop)
      : script_(script), runtime_(runtime), options_(options), stop_(stop),
        resolver_(options.working_directory) {}

  Result<SessionEnd> run() {
    if (auto st = start(); !st) return std::unexpected(st.error());
    auto end = loop();
    if (!end) return end;
    if (!exited_) {
      if (auto st = detach(); !st) return std::unexpected(st.error());
    }
    return end;
  }

 private:
  Status start() {
    const bool launching = !options_.command.empty();
    auto tracee = launching ? process::Tracee::launch(options_.command)
                            : process::Tracee::attach(options_.pid);
    if (!tracee) return std::unexpected(tracee.error());
    tracee_ = std::move(*tracee);

    auto armed = arm(launching);
    if (!armed) {
      if (launching) {
        discard_launched(tracee_);
      } else {
        (void)tracee_->detach();
      }
      return armed;
    }
    if (options_.on_armed) options_.on_armed();
    run_special_probes(script_, runtime_, lang::ProbeKind::Begin);
    if (auto st = tracee_->resume_all(); !st) return st;
    if (launching) {
      // The launched thread was handed to us at exec (or at its entry point): release it.
      if (auto st = tracee_->resume(tracee_->pid()); !st) return st;
    }
    return {};
  }

  Status arm(bool launching) {
    const pid_t pid = tracee_->pid();
    auto maps = process::read_maps(pid);
    if (!maps) return std::unexpected(maps.error());
    if (launching && needs_libraries(script_, resolver_, *maps)) {
      if (auto st = run_to_entry(*tracee_); !st) return st;
      maps = process::read_maps(pid);
      if (!maps) return std::unexpected(maps.error());
    }
    auto sites = resolver_.resolve(
        script_, pid, *maps, [this](uint64_t address, std::span<uint8_t> out) {
          return tracee_->read_memory(address, out);
        });
    if (!sites) return std::unexpected(sites.error());

    engine_ = std::make_unique<BreakpointEngine>(
        *tracee_, [this](const ProbeSite& site, pid_t tid, const process::Registers& regs) {
          on_hit(site, tid, regs);
        });
    if (auto st = engine_->arm(std::move(*sites)); !st) return st;
    if (options_.verbose) {
      for (const auto& site : engine_->sites()) print_site(options_.diagnostics, pid, site);
    }
    return {};
  }

  void on_hit(const ProbeSite& site, pid_t tid, const process::Registers& regs) {
    runtime::HitContext ctx = make_hit_context(tracee_->pid(), tid, regs, comms_);
    TraceeMemoryReader memory(*tracee_);
    for (uint32_t program : site.programs) runtime_.run(program, ctx, memory);
  }

  Result<SessionEnd> loop() {
    for (;;) {
      if (stop_.load(std::memory_order_relaxed)) return SessionEnd::StopRequested;
      if (runtime_.exit_requested()) return SessionEnd::ScriptExit;
      auto event = tracee_->next_event(100);
      if (!event) {
        if (event.error().errno_value == EINTR) continue;
        return std::unexpected(event.error());
      }
      if (!event->has_value()) continue;
      auto done = dispatch(**event);
      if (!done) return std::unexpected(done.error());
      if (*done) return SessionEnd::TargetExited;
    }
  }

  // Returns true when the target process is gone.
  Result<bool> dispatch(const process::Event& ev) {
    auto disposition = engine_->handle(ev);
    if (!disposition) return std::unexpected(disposition.error());
    if (*disposition == BreakpointEngine::Disposition::Consumed) return false;

    using process::EventKind;
    switch (ev.kind) {
      case EventKind::Trap:
      case EventKind::Signal:
        // Not ours: the program gets its signal exactly as it would unprobed.
        if (auto st = tracee_->resume(ev.tid, ev.signal); !st) return std::unexpected(st.error());
        return false;
      case EventKind::Exec:
        // The old image, with every site and slot, is gone.
        engine_->forget_all();
        comms_.clear();
        if (options_.verbose) {
          fmt::print(options_.diagnostics, "process {} called exec: its probes are gone\n",
                     tracee_->pid());
        }
        if (auto st = tracee_->resume(ev.tid); !st) return std::unexpected(st.error());
        return false;
      case EventKind::Fork:
        // The child is not followed: it must run its own copy of the code without our int3s.
        if (auto st = engine_->clean_fork_child(ev.child); !st) return std::unexpected(st.error());
        [[fallthrough]];
      case EventKind::VFork:
        // A vfork child shares our memory until it execs; it cannot be cleaned separately.
        if (auto st = tracee_->detach_child(ev.child); !st) return std::unexpected(st.error());
        if (auto st = tracee_->resume(ev.tid); !st) return std::unexpected(st.error());
        return false;
      case EventKind::ThreadExited:
        comms_.forget(ev.tid);
        return false;
      case EventKind::Exited:
      case EventKind::Killed:
        exited_ = true;
        return true;
    }
    return false;
  }

  Status detach() {
    if (auto st = tracee_->stop_all(); !st) return st;
    auto disarmed = engine_->disarm();
    auto detached = tracee_->detach();
    if (!disarmed) return disarmed;
    return detached;
  }

  const lang::CompiledScript& script_;
  runtime::ProbeRuntime& runtime_;
  const SessionOptions& options_;
  const std::atomic<bool>& stop_;
  SiteResolver resolver_;
  std::unique_ptr<process::Tracee> tracee_;
  std::unique_ptr<BreakpointEngine> engine_;
  CommCache comms_;
  bool exited_ = false;
};

}  // namespace

Result<SessionEnd> run_session(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
                               const SessionOptions& options, const std::atomic<bool>& stop) {
  Session session(script, runtime, options, stop);
  return session.run();
}

void run_special_probes(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
                        lang::ProbeKind kind) {
  runtime::HitContext ctx;
  ctx.pid = static_cast<int32_t>(::getpid());
  ctx.tid = ctx.pid;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ctx.nsecs = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  std::snprintf(ctx.comm, sizeof ctx.comm, "dprobe");
  NoMemory memory;
  for (const auto& block : script.probes) {
    bool matches = std::any_of(block.attach_points.begin(), block.attach_points.end(),
                               [&](const lang::AttachPoint& ap) { return ap.kind == kind; });
    if (matches) runtime.run(block.program_index, ctx, memory);
  }
}

size_t count_attach_points(const lang::CompiledScript& script) {
  size_t n = 0;
  for (const auto& block : script.probes) n += block.attach_points.size();
  return n;
}

}  // namespace dprobe::probes
