#include "probes/probe_session.h"

#include <elf.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common/scope_guard.h"
#include "probes/agent_engine.h"
#include "probes/breakpoint_engine.h"
#include "probes/exec_watch.h"
#include "probes/mechanism_planner.h"
#include "probes/process_watch.h"
#include "probes/hit_context.h"
#include "probes/interval_timers.h"
#include "probes/loader_watch.h"
#include "probes/run_to_entry.h"
#include "probes/site_resolver.h"
#include "process/auxv.h"
#include "process/fork_notices.h"
#include "process/maps.h"
#include "process/tracee.h"
#include "stacks/unwind_tables.h"

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
               "mechanism {} ({})\n",
               name, pid, site.address, site.file_path,
               site.function.empty() ? "?" : site.function, site.function_offset,
               site.file_vaddr, site.instruction.text, mechanism_name(site.mechanism),
               site.mechanism_reason);
  }
  if (!site.exit_note.empty()) fmt::print(out, "  return probe {}\n", site.exit_note);
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

/// A thread of `pid` whose signal mask holds SIGTRAP (from /proc/PID/task/TID/status SigBlk).
std::optional<pid_t> thread_blocking_sigtrap(pid_t pid) {
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error)) {
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (!line.starts_with("SigBlk:")) continue;
      const uint64_t mask = std::strtoull(line.c_str() + 7, nullptr, 16);
      if (mask & (uint64_t{1} << (SIGTRAP - 1))) {
        return static_cast<pid_t>(std::strtol(entry.path().filename().c_str(), nullptr, 10));
      }
    }
  }
  return std::nullopt;
}

bool has_interpreter(pid_t pid) {
  auto auxv = process::read_auxv(pid);
  if (!auxv) return false;
  auto base = process::aux_value(*auxv, AT_BASE);
  return base && *base != 0;
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

/// Wait slice of a tracer thread while other threads of dprobe trace processes too (fork
/// children with sessions of their own): a SIGCHLD one of them takes is not waited for longer.
constexpr int kSharedWaitSliceMs = 1;

class Session {
 public:
  Session(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
          const SessionOptions& options, const std::atomic<bool>& stop)
      : script_(script), runtime_(runtime), options_(options), stop_(stop),
        resolver_(options.working_directory) {}

  Result<SessionEnd> run() {
    if (auto st = start(); !st) return std::unexpected(st.error());
    auto end = follow_process();
    if (!end) return end;
    if (*end == SessionEnd::TargetExited) {
      // Forks the process made just before it ended are queued by now.
      follow_noticed_forks();
      followed_parents_.erase(pid_);
      if (!children_.empty() || child_sessions_running()) end = wait_for_children();
    }
    if (!end) return end;
    release_children(); // while the sites still say what is armed
    end_child_sessions(*end != SessionEnd::TargetExited);
    Status detached;
    if (!exited_) detached = running_free_ ? reattach_and_detach() : detach();
    // The process may end while we stop it to leave (exit() racing its own exit): nothing is
    // left to restore then, and no error to report.
    if (!detached && process_gone(pid_)) {
      detached = {};
      exited_ = true;
    }
    if (agent_) agent_->collect(runtime_, options_.diagnostics);
    if (runtime_.vm_errors() != 0) {
      fmt::print(options_.diagnostics, "dprobe: {} probe runs stopped by the VM (last: {})\n",
                 runtime_.vm_errors(), bytecode::vm_status_name(runtime_.last_status()));
    }
    if (!detached) return std::unexpected(detached.error());
    if (launched_ && exited_) ::waitpid(pid_, nullptr, WNOHANG);
    return end;
  }

 private:
  Status start() {
    const bool launching = !options_.command.empty();
    // Launched, or taken inside execve: the new image waits at its first instruction.
    const bool at_exec = launching || options_.exec_seized != nullptr;
    auto tracee = launching ? process::Tracee::launch(options_.command)
                  : options_.exec_seized
                      ? process::Tracee::seize_before_exec(options_.pid, options_.exec_seized)
                      : process::Tracee::attach(options_.pid);
    if (!tracee) return std::unexpected(tracee.error());
    tracee_ = std::move(*tracee);
    pid_ = tracee_->pid();
    launched_ = launching;
    if (launching) runtime_.set_cpid(static_cast<uint64_t>(pid_));
    if (options_.parked) {
      tracee_->set_wait_slice_ms(kSharedWaitSliceMs);
      // First of all, whatever fails later: the child returns from fork as it would have.
      process::Registers regs = options_.parked->regs;
      regs.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart: it is past fork
      if (auto st = tracee_->set_registers(pid_, regs); !st) {
        return with_context(st.error(), "taking a parked fork child");
      }
    }

    auto armed = arm(at_exec);
    if (!armed) {
      if (launching) {
        discard_launched(tracee_);
      } else {
        (void)tracee_->detach();
      }
      return armed;
    }
    if (options_.on_armed) options_.on_armed(armed_probe_count());
    if (agent_) agent_->share_maps(runtime_); // BEGIN's print(@m) sees hits already counted
    if (options_.run_script_probes) {
      run_special_probes(script_, runtime_, lang::ProbeKind::Begin);
      timers_.emplace(script_, monotonic_ns());
    }
    if (agent_) agent_->seed_maps(runtime_); // hits that read BEGIN's values find them
    if (should_run_free()) return let_go();
    if (auto st = tracee_->resume_all(); !st) return st;
    if (at_exec) {
      // The thread was handed to us at exec (or at its entry point): release it.
      if (auto st = tracee_->resume(tracee_->pid()); !st) return st;
    }
    return {};
  }

  // int3-boost probes, and no breakpoint that needs dprobe on its hits: the loader's may stay,
  // when the agent serves it and makes the loader wait for dprobe (abi::LoaderHandshake).
  bool should_run_free() const {
    if (!has_boost_sites()) return false;
    const bool only_loader = std::all_of(
        engine_->sites().begin(), engine_->sites().end(),
        [this](const ProbeSite& site) { return !site.armed || is_loader_site(site); });
    return only_loader && (!loader_ || loader_served_by_agent_);
  }

  // Running free: an int3 handled by the agent must not stop in ptrace first. Nothing needs
  // dprobe on the hit path any more, so let go of the process -- straight from the stopped
  // state: a thread resumed while still traced could hit an int3 whose SIGTRAP ptrace would
  // then swallow at detach.
  // Its forks are followed through the kernel's fork notices from now on, subscribed while it is
  // still stopped, so none is missed.
  // Its execs of a probed file are held by fanotify, so that the new image is armed before it
  // runs, as a traced exec is.
  Status let_go() {
    if (agent_->follows_children() && watch_forks()) followed_parents_.insert(pid_);
    watch_execs();
    if (loader_) {
      // Library loads: the loader's breakpoint makes the loading thread wait for dprobe.
      agent_->set_loader_handshake(loader_->r_brk, loader_state_address(), pid_);
      loader_answered_ = agent_->loader_requests();
    }
    if (auto st = tracee_->detach(); !st) return st;
    tracee_.reset();
    running_free_ = true;
    return {};
  }

  // Watches execs of the probed files once; a note where fanotify is refused.
  void watch_execs() {
    if (exec_watch_ || exec_watch_failed_) return;
    std::vector<std::string> paths;
    for (const auto& point : points_) {
      if (std::find(paths.begin(), paths.end(), point.file_path) == paths.end()) {
        paths.push_back(point.file_path);
      }
    }
    exec_watch_ = ExecWatch::open(paths);
    if (!exec_watch_) {
      exec_watch_failed_ = true;
      fmt::print(options_.diagnostics,
                 "dprobe: process {} is not followed into exec (no fanotify exec events here): "
                 "a new image runs unprobed\n",
                 pid_);
    }
  }

  // Running free, the process execs a probed file and waits in execve for our answer: it is
  // taken there, every thread, and its new image armed before its first instruction, as a
  // traced exec is (on_exec). Other processes that exec the file go on at once. Returns false
  // when the session is attached again (the new image has probes that need ptrace).
  Result<bool> take_execs() {
    while (exec_watch_) {
      auto event = exec_watch_->next();
      if (!event) return true;
      const auto [pid, event_fd] = *event;
      if (pid != pid_) {
        exec_watch_->allow(event_fd);
        continue;
      }
      agent_->poll(runtime_);  // what the old image counted, while its region still fills
      const ExecWatch& watch = *exec_watch_;
      auto tracee = process::Tracee::seize_before_exec(
          pid_, [&watch, fd = event_fd] { watch.allow(fd); });
      if (!tracee) {
        // A failed exec (the old image goes on, probed) or a process gone: nothing to arm.
        if (options_.verbose) {
          fmt::print(options_.diagnostics, "dprobe: process {} not taken at exec: {}\n", pid_,
                     tracee.error().text());
        }
        continue;
      }
      tracee_ = std::move(*tracee);
      engine_->rebind(*tracee_);
      running_free_ = false;
      if (auto st = on_exec(pid_); !st) return std::unexpected(st.error());
      if (!run_free_now_) return false;
      run_free_now_ = false;
      if (auto st = let_go(); !st) return std::unexpected(st.error());
    }
    return true;
  }

  uint64_t loader_state_address() const {
    return loader_->r_debug != 0 ? loader_->r_debug + offsetof(struct r_debug, r_state) : 0;
  }

  // Running free, a thread reached the loader's rendezvous breakpoint and waits in the agent
  // for us (abi::LoaderHandshake): the process is taken again, every thread stopped, and what
  // the loader mapped or unmapped is synced as at a traced loader stop (on_loader_stop) before
  // any of the new library's code runs. Returns false when the new probes need the session to
  // stay attached. The waiting thread is answered whatever happens.
  Result<bool> serve_loader_stops() {
    const uint32_t requests = agent_->loader_requests();
    const uint64_t start = monotonic_ns();
    auto tracee = process::Tracee::attach(pid_);
    if (!tracee) {
      agent_->answer_loader(requests);
      loader_answered_ = requests;
      if (!process_gone(pid_)) {
        fmt::print(options_.diagnostics, "dprobe: process {}: a library load not watched: {}\n",
                   pid_, tracee.error().text());
      }
      return true;
    }
    tracee_ = std::move(*tracee);
    engine_->rebind(*tracee_);
    running_free_ = false;
    settle_caught_events(*tracee_);
    const LoaderState state = read_loader_state(*loader_, target_reader());
    if (state == LoaderState::Consistent || state == LoaderState::Unknown) {
      if (auto st = sync_with_loader(start); !st) {
        fmt::print(options_.diagnostics, "dprobe: process {}: probes of a newly mapped file: {}\n",
                   pid_, st.error().text());
      }
    }
    loader_answered_ = requests;
    if (!should_run_free()) {
      // Breakpoints of the new library need ptrace: the loader is served by ptrace from now on.
      agent_->set_loader_handshake(0, 0, pid_);
      agent_->answer_loader(requests);
      if (auto st = tracee_->resume_all(); !st) return std::unexpected(st.error());
      return false;
    }
    if (auto st = let_go(); !st) return std::unexpected(st.error());
    loader_answered_ = requests;
    agent_->answer_loader(requests);
    return true;
  }

  // Subscribes to the fork notices once; false (with a note) where the kernel refuses them.
  bool watch_forks() {
    if (fork_notices_) return true;
    if (fork_notices_failed_) return false;
    auto notices = process::ForkNotices::open();
    if (!notices) {
      fork_notices_failed_ = true;
      fmt::print(options_.diagnostics,
                 "dprobe: children of untraced processes are not followed ({}): their probes "
                 "count only while dprobe runs\n",
                 notices.error().text());
      return false;
    }
    fork_notices_ = std::move(*notices);
    return true;
  }

  // Children that the followed processes dprobe does not trace made since the last call, and
  // theirs, in the order the kernel reports them: each is followed as a ptrace fork child is.
  void follow_noticed_forks() {
    if (!fork_notices_) return;
    auto drained = fork_notices_->drain([this](pid_t parent, pid_t child) {
      if (!followed_parents_.contains(parent)) return;
      if (options_.verbose) {
        fmt::print(options_.diagnostics, "process {} forked {}: its probes stay and count\n",
                   parent, child);
      }
      // A child already gone and reaped has nothing left to wait for: its hits are counted.
      auto watch = ProcessWatch::open(child, false);
      if (!watch) return;
      followed_parents_.insert(child);
      children_.push_back(std::move(*watch));
    });
    if (!drained) {
      fmt::print(options_.diagnostics, "dprobe: {}: children made meanwhile are not waited for\n",
                 drained.error().text());
      fork_notices_.reset();
      fork_notices_failed_ = true;
    }
  }

  // Followed children that ended are forgotten -- after the notices of every fork they made
  // were taken (a child's forks are queued before it can exit).
  void forget_ended_children() {
    std::vector<pid_t> ended;
    for (ProcessWatch& child : children_) {
      if (child.wait_exit(0)) ended.push_back(child.pid());
    }
    follow_noticed_forks();
    for (pid_t pid : ended) {
      followed_parents_.erase(pid);
      std::erase_if(children_, [pid](const ProcessWatch& w) { return w.pid() == pid; });
    }
  }

  // Every uprobe name on a site (wildcards expanded) and every other attach point.
  size_t armed_probe_count() const {
    size_t n = 0;
    for (const auto& block : script_.probes) {
      for (const auto& ap : block.attach_points) n += ap.kind != lang::ProbeKind::Uprobe;
    }
    if (agent_) {
      for (const auto& site : agent_->sites()) n += site.attached_probe_count();
    }
    for (const auto& site : engine_->sites()) {
      if (!is_loader_site(site)) n += site.attached_probe_count();
    }
    // Probes waiting for their library count as attached, as bpftrace's uprobes on a file do.
    for (const auto& point : points_) n += !point.mapped;
    return n;
  }

  bool is_loader_site(const ProbeSite& site) const {
    return loader_ && site.address == loader_->r_brk;
  }

  bool has_boost_sites() const {
    if (!agent_) return false;
    return std::any_of(agent_->sites().begin(), agent_->sites().end(),
                       [](const ProbeSite& s) { return s.mechanism == Mechanism::Int3Boost; });
  }

  // Decides jump / int3-boost / int3-ptrace for every site.
  // Mechanisms chosen, then the sites split between the agent and the breakpoint engine.
  Result<std::pair<std::vector<ProbeSite>, std::vector<ProbeSite>>> plan_sites(
      std::vector<ProbeSite> sites) {
    const std::string agent_problem = options_.mechanism == Mechanism::Int3Ptrace
                                          ? "not used with --mechanism int3-ptrace"
                                          : "";
    if (auto st = choose_mechanisms(sites, agent_problem); !st) return std::unexpected(st.error());
    std::pair<std::vector<ProbeSite>, std::vector<ProbeSite>> split;
    for (auto& site : sites) {
      (site.mechanism == Mechanism::Int3Ptrace ? split.second : split.first)
          .push_back(std::move(site));
    }
    return split;
  }

  Status choose_mechanisms(std::vector<ProbeSite>& sites, const std::string& agent_problem) {
    // Read once, not per site: the threads' signal masks (/proc) for the int3-boost check.
    std::optional<std::optional<pid_t>> sigtrap_blocker;
    for (auto& site : sites) {
      // Planned from the file's bytes: the site's own bytes were checked against the process,
      // and a patch left by a killed dprobe must not be mistaken for the program's code.
      const std::vector<uint8_t>& function_code = site.function_code;
      auto choice = choose_mechanism(site, function_code, agent_problem, options_.mechanism);
      if (!choice) return std::unexpected(choice.error());
      apply_choice(site, std::move(*choice));
      if (site.mechanism == Mechanism::Int3Boost && !options_.mechanism) {
        // The kernel kills a thread whose int3 raises a SIGTRAP it blocks; under ptrace the
        // trap reaches dprobe first.
        if (!sigtrap_blocker) sigtrap_blocker = thread_blocking_sigtrap(tracee_->pid());
        if (auto tid = *sigtrap_blocker) {
          site.mechanism = Mechanism::Int3Ptrace;
          site.mechanism_reason = fmt::format(
              "{}; int3-boost refused: thread {} blocks SIGTRAP", site.mechanism_reason, *tid);
        }
      }
    }
    return {};
  }

  TargetReader target_reader() {
    return [this](uint64_t address, std::span<uint8_t> out) {
      return tracee_->read_memory(address, out);
    };
  }

  // Probe ids the agent keeps for probes armed later: one per place in a file not mapped yet
  // (a reload of a library gets the ids of its first load back).
  uint32_t deferred_capacity() const {
    std::set<std::pair<std::string, uint64_t>> places;
    for (const auto& point : points_) {
      if (!point.mapped) places.emplace(point.file_path, point.file_vaddr);
    }
    return static_cast<uint32_t>(places.size());
  }

  // A new image that maps none of the probed files is left unprobed (on_exec says so): its
  // probes are on another program, not on a library it may load.
  Status check_unmapped(bool after_exec) {
    const bool none_mapped = std::none_of(points_.begin(), points_.end(),
                                          [](const UprobePoint& p) { return p.mapped; });
    if (!after_exec || !none_mapped || points_.empty()) return {};
    const UprobePoint& first = points_.front();
    return fail("{}: {}: not mapped in process {}", first.ap.raw, first.file_path, pid_);
  }

  Status arm(bool launching, bool after_exec = false) {
    const pid_t pid = tracee_->pid();
    resolver_.set_process(pid);
    auto maps = process::read_maps(pid);
    if (!maps) return std::unexpected(maps.error());
    // A dynamically linked program is let run to its entry point first: its libraries are
    // mapped then, and its threads have TLS, which the agent's fastest path relies on.
    if (launching && (needs_libraries(script_, resolver_, *maps) || has_interpreter(pid))) {
      if (auto st = run_to_entry(*tracee_); !st) return st;
      maps = process::read_maps(pid);
      if (!maps) return std::unexpected(maps.error());
    }
    points_.clear();
    armed_files_.clear();
    loader_.reset();
    auto sites = resolver_.resolve(script_, pid, *maps, target_reader(), &points_);
    if (!sites) return std::unexpected(sites.error());
    if (auto st = check_unmapped(after_exec); !st) return st;
    for (const auto& point : points_) {
      if (point.mapped) armed_files_.insert(point.file_path);
    }

    auto split = plan_sites(std::move(*sites));
    if (!split) return std::unexpected(split.error());
    auto& [agent_sites, ptrace_sites] = *split;
    if (!agent_sites.empty()) {
      bool boost = std::any_of(agent_sites.begin(), agent_sites.end(), [](const ProbeSite& s) {
        return s.mechanism == Mechanism::Int3Boost;
      });
      // Probes armed later may need the agent's SIGTRAP handler, and so does the loader's
      // breakpoint if dprobe dies (let_agent_serve_loader_trap): installed now, while it is sure.
      const uint32_t later = deferred_capacity();
      auto agent = AgentEngine::place(*tracee_, script_,
                                      static_cast<uint32_t>(agent_sites.size()) + later + 1,
                                      boost || later != 0 || library_probed() ||
                                          captures_stacks_);
      if (!agent) {
        if (options_.mechanism) return std::unexpected(agent.error());
        // The agent could not be placed (seccomp, no memfd, ...): breakpoints still work.
        for (auto& site : agent_sites) {
          site.mechanism = Mechanism::Int3Ptrace;
          site.mechanism_reason = "in-target agent unavailable: " + agent.error().text();
          ptrace_sites.push_back(std::move(site));
        }
        agent_sites.clear();
      } else {
        agent_ = std::move(*agent);
        if (auto st = agent_->arm(*tracee_, std::move(agent_sites)); !st) return st;
      }
    }

    if (!agent_ && deferred_capacity() != 0 && options_.mechanism != Mechanism::Int3Ptrace) {
      // Probes wait for a library: the agent is placed now, with its SIGTRAP handler, so that
      // the loader's breakpoint never kills the process if dprobe dies (add_trap_passthrough).
      // If it cannot be placed, it is tried again when the library is mapped.
      auto agent = AgentEngine::place(*tracee_, script_, deferred_capacity() + 1, true);
      if (agent && (*agent)->arm(*tracee_, {})) agent_ = std::move(*agent);
    }
    engine_ = std::make_unique<BreakpointEngine>(
        *tracee_, [this](const ProbeSite& site, pid_t tid, const process::Registers& regs) {
          on_hit(site, tid, regs);
        });
    if (auto st = engine_->arm(std::move(ptrace_sites)); !st) return st;
    if (captures_stacks_) unwind_ = std::make_unique<stacks::ProcessUnwindTables>(cfi_rows_);
    update_stacks(*maps);
    if (options_.verbose) {
      if (agent_) {
        for (const auto& site : agent_->sites()) print_site(options_.diagnostics, pid, site);
      }
      for (const auto& site : engine_->sites()) print_site(options_.diagnostics, pid, site);
    }
    return watch_loader(*maps);
  }

  // Deferred insertion: probes on a file the process has not mapped yet are armed when the
  // dynamic loader maps it, at its rendezvous breakpoint. Probes on a library mapped already are
  // watched too (forgotten at dlclose, armed again at the next dlopen). A session that runs free
  // keeps the breakpoint: the agent serves it and makes the loading thread wait for dprobe,
  // which takes the process only for that moment (serve_loader_stops).
  Status watch_loader(std::span<const process::Mapping> maps) {
    std::vector<std::string> waiting;
    for (const auto& point : points_) {
      if (!point.mapped && std::find(waiting.begin(), waiting.end(), point.ap.path) == waiting.end()) {
        waiting.push_back(point.ap.path);
      }
    }
    if (waiting.empty()) {
      // Never an int3 on the loader that a dprobe killed with -9 would leave unserved, where the
      // probes themselves would not (agent probes without its SIGTRAP handler).
      const bool kill_safe = !agent_ || agent_->has_trap_handler();
      // Stacks are watched too: a library loaded later needs its unwind rows in the tables.
      if ((!library_probed() && !captures_stacks_) || !kill_safe) return {};
      auto watched = arm_loader_breakpoint(maps);
      if (!watched && options_.verbose) {
        fmt::print(options_.diagnostics, "dprobe: not watching library loads in process {}: {}\n",
                   pid_, watched.error().text());
      }
      if (watched) print_staying_attached();
      return {};
    }
    if (auto st = arm_loader_breakpoint(maps); !st) {
      return fail("{}: not mapped in process {}, and its loads cannot be watched: {}",
                  waiting.front(), pid_, st.error().text());
    }
    for (const auto& path : waiting) {
      fmt::print(options_.diagnostics,
                 "dprobe: {} is not mapped in process {} yet: its probes are armed when it is\n",
                 path, pid_);
    }
    print_staying_attached();
    return {};
  }

  // A probe is on a file other than the program itself (a library it may dlclose and load again).
  bool library_probed() const {
    std::error_code error;
    const auto exe = std::filesystem::canonical(fmt::format("/proc/{}/exe", pid_), error);
    return std::any_of(points_.begin(), points_.end(),
                       [&](const UprobePoint& p) { return p.file_path != exe.string(); });
  }

  void print_staying_attached() const {
    if (!options_.verbose) return;
    if (should_run_free()) {
      fmt::print(options_.diagnostics,
                 "dprobe runs free of process {}: its dynamic loader waits for dprobe at {:#x} "
                 "(_dl_debug_state) on every dlopen and dlclose, for probes on files mapped "
                 "later\n",
                 pid_, loader_->r_brk);
      return;
    }
    fmt::print(options_.diagnostics,
               "dprobe stays attached to process {}: its dynamic loader stops at {:#x} "
               "(_dl_debug_state) on every dlopen and dlclose, for probes on files mapped later\n",
               pid_, loader_->r_brk);
  }

  Status arm_loader_breakpoint(std::span<const process::Mapping> maps) {
    auto rendezvous = find_loader_rendezvous(pid_, maps, target_reader());
    if (!rendezvous) return std::unexpected(rendezvous.error());
    auto site = loader_breakpoint_site(*rendezvous, maps, target_reader());
    if (!site) return std::unexpected(site.error());
    loader_ = *rendezvous;
    std::vector<ProbeSite> one;
    one.push_back(std::move(*site));
    if (auto st = engine_->add(std::move(one)); !st) {
      loader_.reset();
      return st;
    }
    let_agent_serve_loader_trap();
    return {};
  }

  // The loader's int3 resumes in its out-of-line copy (a boosted one: it jumps back) through
  // the agent too, if dprobe is gone. Best effort: without it a dprobe killed with -9 leaves an
  // int3 that kills the process at its next dlopen.
  void let_agent_serve_loader_trap() {
    if (!agent_ || !loader_ || !agent_->has_trap_handler()) return;
    for (const auto& site : engine_->sites()) {
      if (is_loader_site(site) && site.armed) {
        loader_served_by_agent_ = agent_->add_trap_passthrough(site.address, site.slot_address)
                                      .has_value();
      }
    }
  }

  // A thread stopped at the loader's rendezvous breakpoint, in the middle of dlopen or dlclose.
  // Once the loader says its list is consistent again, a library it added is mapped but none of
  // its code has run (relocation and constructors come after): probes on it are armed now, with
  // every thread stopped. A library it removed is unmapped: its sites are forgotten.
  void on_loader_stop() {
    if (!in_loop_) return;  // detaching: the original byte goes back and the loader runs on
    const LoaderState state = read_loader_state(*loader_, target_reader());
    if (state != LoaderState::Consistent && state != LoaderState::Unknown) return;
    const uint64_t start = monotonic_ns();
    if (auto st = tracee_->stop_all(); !st) {
      fmt::print(options_.diagnostics, "dprobe: process {}: {}\n", pid_, st.error().text());
      return;
    }
    if (auto st = sync_with_loader(start); !st) {
      fmt::print(options_.diagnostics, "dprobe: process {}: probes of a newly mapped file: {}\n",
                 pid_, st.error().text());
    }
    if (auto st = tracee_->resume_all(); !st) {
      fmt::print(options_.diagnostics, "dprobe: process {}: {}\n", pid_, st.error().text());
    }
  }

  Status sync_with_loader(uint64_t start) {
    auto maps = process::read_maps(pid_);
    if (!maps) return std::unexpected(maps.error());
    // Stacks through the new library unwind by its CFI (an agent placed below gets the tables
    // when it is armed).
    update_stacks(*maps);
    ScopeGuard publish_stacks([this] {
      if (agent_ && unwind_) agent_->publish_unwind(*unwind_);
    });
    size_t forgotten = engine_->forget_unmapped(*maps);
    if (agent_) forgotten += agent_->forget_unmapped(*maps);
    if (forgotten != 0 && options_.verbose) {
      fmt::print(options_.diagnostics, "process {}: {} probe sites forgotten (code unmapped)\n",
                 pid_, forgotten);
    }
    std::vector<UprobePoint> to_arm;
    std::set<std::string> mapped_now;
    for (const auto& point : points_) {
      if (resolver_.is_mapped(point, *maps)) mapped_now.insert(point.file_path);
    }
    for (auto it = armed_files_.begin(); it != armed_files_.end();) {
      if (mapped_now.contains(*it)) {
        ++it;
        continue;
      }
      if (options_.verbose) {
        fmt::print(options_.diagnostics, "process {} unmapped {}: its probes are forgotten\n",
                   pid_, *it);
      }
      it = armed_files_.erase(it);
    }
    for (const auto& point : points_) {
      if (mapped_now.contains(point.file_path) && !armed_files_.contains(point.file_path)) {
        to_arm.push_back(point);
      }
    }
    if (to_arm.empty()) return {};
    for (const auto& point : to_arm) armed_files_.insert(point.file_path);
    auto sites = resolver_.resolve_points(to_arm, pid_, *maps, target_reader());
    if (!sites) return std::unexpected(sites.error());
    auto split = plan_sites(std::move(*sites));
    if (!split) return std::unexpected(split.error());
    auto& [agent_sites, ptrace_sites] = *split;
    if (!agent_sites.empty() && !agent_) {
      // The first probes in the agent: it is placed now, with room for every deferred probe.
      auto agent = AgentEngine::place(*tracee_, script_, deferred_capacity() + 1, true);
      if (agent) {
        agent_ = std::move(*agent);
        if (auto st = agent_->arm(*tracee_, {}); !st) return st;
        agent_->share_maps(runtime_);
        let_agent_serve_loader_trap();
      } else {
        if (options_.mechanism) return std::unexpected(agent.error());
        for (auto& site : agent_sites) {
          site.mechanism = Mechanism::Int3Ptrace;
          site.mechanism_reason = "in-target agent unavailable: " + agent.error().text();
          ptrace_sites.push_back(std::move(site));
        }
        agent_sites.clear();
      }
    }
    const size_t agent_first = agent_ ? agent_->sites().size() : 0;
    const size_t engine_first = engine_->sites().size();
    if (!agent_sites.empty()) {
      if (auto st = agent_->add(*tracee_, std::move(agent_sites)); !st) return st;
    }
    if (auto st = engine_->add(std::move(ptrace_sites)); !st) return st;
    if (options_.verbose) {
      if (agent_) {
        for (size_t i = agent_first; i < agent_->sites().size(); ++i) {
          print_site(options_.diagnostics, pid_, agent_->sites()[i]);
        }
      }
      for (size_t i = engine_first; i < engine_->sites().size(); ++i) {
        print_site(options_.diagnostics, pid_, engine_->sites()[i]);
      }
      std::set<std::string> files;
      for (const auto& point : to_arm) files.insert(point.file_path);
      for (const auto& file : files) {
        fmt::print(options_.diagnostics,
                   "process {} mapped {}: its probes armed in {} us at the loader's stop\n",
                   pid_, file, (monotonic_ns() - start) / 1000);
      }
    }
    return {};
  }

  /// ustack: unwind tables for the files `maps` shows, given to the agent too; a snapshot of
  /// the mappings, to name frames after the process is gone.
  void update_stacks(const std::vector<process::Mapping>& maps) {
    if (!unwind_) return;
    for (const std::string& note : unwind_->update(maps)) {
      if (options_.verbose) fmt::print(options_.diagnostics, "process {}: {}\n", pid_, note);
    }
    unwind_view_ = unwind_->view();
    if (agent_) agent_->publish_unwind(*unwind_);
    runtime_.stacks().note_mappings(pid_);
  }

  void on_hit(const ProbeSite& site, pid_t tid, const process::Registers& regs) {
    if (is_loader_site(site)) {
      on_loader_stop();
      return;
    }
    runtime::HitContext ctx =
        make_hit_context(tracee_->pid(), tid, regs, comms_, site.address, reads_cpu_);
    if (unwind_) ctx.unwind = &unwind_view_;
    TraceeMemoryReader memory(*tracee_);
    for (uint32_t program : site.programs) runtime_.run(program, ctx, memory);
  }

  // Attached (ptrace) or running free, switching when an exec brings probes that want the other.
  Result<SessionEnd> follow_process() {
    for (;;) {
      auto end = running_free_ ? loop_free() : loop();
      if (!end) return std::unexpected(end.error());
      if (*end) return **end;
    }
  }

  /// nullopt: the session now runs free of the process (loop_free() goes on).
  Result<std::optional<SessionEnd>> loop() {
    // Loader stops are acted on only from here: during detach they are let pass.
    in_loop_ = true;
    ScopeGuard leave([this] { in_loop_ = false; });
    uint64_t children_checked_ns = 0;
    for (;;) {
      if (agent_) agent_->poll(runtime_);
      if (stop_.load(std::memory_order_relaxed)) return SessionEnd::StopRequested;
      if (timers_) run_due_intervals(*timers_, runtime_);
      if (runtime_.exit_requested()) return SessionEnd::ScriptExit;
      if (fork_notices_ && monotonic_ns() - children_checked_ns >= 10'000'000) {
        // Between events, not per event: a busy breakpoint does not pay for it.
        forget_ended_children();
        children_checked_ns = monotonic_ns();
      }
      const int wait_ms = agent_ ? 10 : 100;
      auto event =
          tracee_->next_event(timers_ ? timers_->wait_ms(monotonic_ns(), wait_ms) : wait_ms);
      if (!event) {
        if (event.error().errno_value == EINTR) continue;
        return std::unexpected(event.error());
      }
      if (!event->has_value()) continue;
      auto done = dispatch(**event);
      if (!done) return std::unexpected(done.error());
      if (*done) return SessionEnd::TargetExited;
      if (run_free_now_) {
        // The image a followed exec brought has int3-boost probes only.
        run_free_now_ = false;
        if (auto st = let_go(); !st) return std::unexpected(st.error());
        return std::nullopt;
      }
    }
  }

  // The process replaced its image: what the old agent counted is kept, and the script's probes
  // are armed in the new image before its first instruction runs (at its entry point when it
  // has a dynamic loader, as for a launched command). Probes whose file the new image does not
  // map leave it unprobed, with a note.
  Status on_exec(const process::Event& ev) { return on_exec(ev.tid); }

  Status on_exec(pid_t tid) {
    if (agent_) {
      agent_->collect(runtime_, options_.diagnostics);
      agent_->forget_all();
      agent_.reset();
    }
    engine_->forget_all();
    comms_.clear();
    std::error_code error;
    const std::string image =
        std::filesystem::read_symlink(fmt::format("/proc/{}/exe", pid_), error).string();
    auto armed = arm(true, true);
    if (!armed) {
      fmt::print(options_.diagnostics, "dprobe: process {} now runs {}: no probes armed ({})\n",
                 pid_, image, armed.error().text());
      agent_.reset();
      (void)tracee_->resume_all();
      return tracee_->resume(tid);
    }
    if (options_.verbose) {
      fmt::print(options_.diagnostics, "process {} called exec: probes armed again in {}\n",
                 pid_, image);
    }
    if (should_run_free()) {
      run_free_now_ = true;
      return {};
    }
    if (auto st = tracee_->resume_all(); !st) return st;
    return tracee_->resume(pid_);
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
        if (auto st = on_exec(ev); !st) return std::unexpected(st.error());
        return false;
      case EventKind::Fork:
        // Breakpoints need dprobe on every hit, and the child is not traced: it gets the
        // original bytes back. Agent probes stay and count into the region the child inherits
        // (its threads take slots of their own, with its pid) where the agent can tell the
        // child's threads from ours; elsewhere the child is cleaned too.
        if (auto st = engine_->clean_fork_child(ev.child); !st) return std::unexpected(st.error());
        if (((!agent_ || agent_->sites().empty()) && has_breakpoint_probes()) || loader_) {
          // Breakpoints only, or library loads to watch (only a tracer sees the child's own
          // dlopen): the child gets a session of its own, which arms everything again (its code
          // is clean now) before it returns from fork.
          if (agent_) {
            if (auto st = agent_->clean_fork_child(*tracee_, ev.child); !st) {
              return std::unexpected(st.error());
            }
          }
          if (auto parked = park_child(ev.child)) {
            if (auto st = tracee_->detach_child(ev.child); !st) return std::unexpected(st.error());
            start_child_session(ev.child, *parked);
            if (auto st = tracee_->resume(ev.tid); !st) return std::unexpected(st.error());
            return false;
          }
        }
        if (agent_ && agent_->follows_children()) {
          if (auto st = follow_child(ev.child); !st) return std::unexpected(st.error());
        } else if (agent_) {
          if (auto st = agent_->clean_fork_child(*tracee_, ev.child); !st) {
            return std::unexpected(st.error());
          }
        }
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

  bool has_breakpoint_probes() const {
    return std::any_of(engine_->sites().begin(), engine_->sites().end(),
                       [this](const ProbeSite& s) { return s.armed && !is_loader_site(s); });
  }

  // The fork child, stopped at its birth, is made to sleep instead of returning from fork: its
  // thread runs the fork's `syscall` instruction again as ppoll(NULL, 0, 10 s, all signals
  // blocked), its arguments written below the red zone of its stack. Its own session puts the
  // fork's registers back. If that session never comes (dprobe killed meanwhile), ppoll returns
  // 0 after 10 s with the child's signal mask back, and fork returns 0 as it should (unprobed).
  // nullopt: not parked (fork was not a `syscall` just before the stop); clean it instead.
  std::optional<ParkedChild> park_child(pid_t child) {
    constexpr uint64_t kParkSeconds = 10;
    auto regs = process::ptrace_get_registers(child);
    if (!regs || regs->rax != 0) return std::nullopt;
    std::array<uint8_t, 2> insn{};
    if (!tracee_->read_memory(regs->rip - 2, insn) || insn != std::array<uint8_t, 2>{0x0f, 0x05}) {
      return std::nullopt;
    }
    const uint64_t args = ((regs->rsp - 256) & ~uint64_t{15}) - 32;
    std::array<uint64_t, 3> block{kParkSeconds, 0, ~uint64_t{0}};  // timespec, then sigset
    std::array<uint8_t, sizeof block> bytes{};
    std::memcpy(bytes.data(), block.data(), sizeof block);
    if (!tracee_->write_memory_of(child, args, bytes)) return std::nullopt;
    process::Registers park = *regs;
    park.rip = regs->rip - 2;
    park.rax = SYS_ppoll;
    park.orig_rax = static_cast<uint64_t>(-1);
    park.rdi = 0;
    park.rsi = 0;
    park.rdx = args;
    park.r10 = args + 16;
    park.r8 = 8;
    if (!process::ptrace_set_registers(child, park)) return std::nullopt;
    return ParkedChild{*regs};
  }

  // The child's session runs on a thread of its own, with a runtime of its own (merged into
  // ours at the end), until the child exits or we stop.
  void start_child_session(pid_t child, const ParkedChild& parked) {
    auto session = std::make_unique<ChildSession>();
    session->runtime =
        std::make_unique<runtime::ProbeRuntime>(script_, runtime_.output(), runtime_.format());
    session->runtime->set_cpid(runtime_.cpid()); // still the command's pid, not the child's
    session->options = options_;
    session->options.pid = child;
    session->options.command.clear();
    session->options.on_armed = nullptr;
    session->options.run_script_probes = false;
    session->options.exec_seized = nullptr;
    session->options.parked = parked;
    if (options_.verbose) {
      fmt::print(options_.diagnostics,
                 "process {} forked {}: its probes are armed again by a session of its own\n",
                 pid_, child);
    }
    tracee_->set_wait_slice_ms(kSharedWaitSliceMs);
    ChildSession* s = session.get();
    session->thread = std::thread([this, s] {
      s->end = run_session(script_, *s->runtime, s->options, child_sessions_stop_);
      s->runtime->flush();
      s->done.store(true);
    });
    child_sessions_.push_back(std::move(session));
  }

  bool child_sessions_running() const {
    return std::any_of(child_sessions_.begin(), child_sessions_.end(),
                       [](const auto& s) { return !s->done.load(); });
  }

  // Every child session ends (stopped now unless the session ends because the processes did),
  // and what it counted joins our maps.
  void end_child_sessions(bool stop) {
    if (stop) child_sessions_stop_.store(true);
    for (auto& session : child_sessions_) {
      session->thread.join();
      if (!session->end && !process_gone(session->options.pid)) {
        fmt::print(options_.diagnostics, "dprobe: fork child {}: {}\n", session->options.pid,
                   session->end.error().text());
      }
      merge_maps(script_, *session->runtime, runtime_);
    }
    child_sessions_.clear();
  }

  // Called while the child is still stopped at its birth: its pidfd names it for sure.
  // Its own forks are followed through the fork notices (it is not traced), subscribed before
  // it runs.
  Status follow_child(pid_t child) {
    auto watch = ProcessWatch::open(child, false);
    if (!watch) return with_context(watch.error(), fmt::format("following child {}", child));
    children_.push_back(std::move(*watch));
    if (watch_forks()) followed_parents_.insert(child);
    if (options_.verbose) {
      fmt::print(options_.diagnostics, "process {} forked {}: its probes stay and count\n", pid_,
                 child);
    }
    return {};
  }

  // The traced process is gone; the session lasts as long as a child it forked lives.
  Result<SessionEnd> wait_for_children() {
    for (;;) {
      if (agent_) agent_->poll(runtime_);
      if (timers_) run_due_intervals(*timers_, runtime_);
      if (stop_.load(std::memory_order_relaxed)) return SessionEnd::StopRequested;
      if (runtime_.exit_requested()) return SessionEnd::ScriptExit;
      forget_ended_children();
      if (children_.empty() && !child_sessions_running()) return SessionEnd::TargetExited;
      const int wait_ms = timers_ ? timers_->wait_ms(monotonic_ns(), 10) : 10;
      if (children_.empty()) {
        ::usleep(static_cast<useconds_t>(wait_ms) * 1000);
      } else {
        (void)children_.front().wait_exit(wait_ms);
      }
    }
  }

  // Followed children still running when the session ends get their original code back.
  // Best effort: a child that cannot be attached keeps inert patches (the region is disabled).
  void release_children() {
    for (ProcessWatch& child : children_) {
      if (child.wait_exit(0)) continue;
      auto tracee = process::Tracee::attach(child.pid());
      if (!tracee) continue;
      if (agent_) {
        settle_caught_events(**tracee);
        (void)agent_->release_child(**tracee);
      }
      (void)(*tracee)->detach();
    }
    children_.clear();
  }

  Status detach() {
    if (auto st = tracee_->stop_all(); !st) return st;
    auto disarmed = engine_->disarm(
        [this](uint64_t address) { return agent_ && is_agent_trap(address); });
    Status agent_disarmed;
    if (agent_) agent_disarmed = agent_->disarm(*tracee_);
    auto detached = tracee_->detach();
    if (!disarmed) return disarmed;
    if (!agent_disarmed) return agent_disarmed;
    return detached;
  }

  // Running free: dprobe only reads the shared region, and watches for the process's end.
  /// nullopt: an exec attached the session again (loop() goes on).
  Result<std::optional<SessionEnd>> loop_free() {
    auto watch = ProcessWatch::open(pid_, launched_);
    if (!watch) return std::unexpected(watch.error());
    for (;;) {
      agent_->poll(runtime_);
      if (stop_.load(std::memory_order_relaxed)) return SessionEnd::StopRequested;
      if (timers_) run_due_intervals(*timers_, runtime_);
      if (runtime_.exit_requested()) return SessionEnd::ScriptExit;
      forget_ended_children();
      auto still_free = take_execs();
      if (!still_free) return std::unexpected(still_free.error());
      if (!*still_free) return std::nullopt;
      if (loader_ && agent_->loader_requests() != loader_answered_) {
        still_free = serve_loader_stops();
        if (!still_free) return std::unexpected(still_free.error());
        if (!*still_free) return std::nullopt;
      }
      int wait_ms = timers_ ? timers_->wait_ms(monotonic_ns(), 10) : 10;
      if (loader_) {
        // A loading thread waits for us: woken by its request, not by the next poll.
        agent_->wait_loader_request(loader_answered_, wait_ms);
        wait_ms = 0;
      }
      if (watch->wait_exit(wait_ms, exec_watch_ ? exec_watch_->fd() : -1)) {
        exited_ = true;
        return SessionEnd::TargetExited;
      }
    }
  }

  // Stopping the world may have caught int3 hits as ptrace stops; detach would drop their
  // SIGTRAP and leave the thread one byte into the instruction. Such a thread is put back on
  // the probed instruction, whose original bytes disarm restores (that one hit is not counted).
  // Other signals caught meanwhile are sent again.
  void settle_caught_events(process::Tracee& tracee) {
    for (;;) {
      auto event = tracee.next_event(0);
      if (!event || !event->has_value()) return;
      const process::Event& ev = **event;
      if (ev.kind == process::EventKind::Trap && ev.siginfo.si_code == SI_KERNEL) {
        auto regs = tracee.get_registers(ev.tid);
        if (regs && is_agent_trap(regs->rip - 1)) {
          regs->rip -= 1;
          (void)tracee.set_registers(ev.tid, *regs);
          continue;
        }
      }
      if (ev.kind == process::EventKind::Trap || ev.kind == process::EventKind::Signal) {
        ::syscall(SYS_tgkill, tracee.pid(), ev.tid, ev.signal);
      }
    }
  }

  bool is_agent_trap(uint64_t address) const {
    if (loader_ && loader_served_by_agent_ && address == loader_->r_brk) return true;
    return std::any_of(agent_->sites().begin(), agent_->sites().end(), [&](const ProbeSite& s) {
      return s.mechanism == Mechanism::Int3Boost && s.address == address;
    });
  }

  // Takes the process again to restore its code, then lets it go for good.
  Status reattach_and_detach() {
    auto tracee = process::Tracee::attach(pid_);
    if (!tracee) {
      if (process_gone(pid_)) {
        exited_ = true;
        return {};
      }
      return with_context(tracee.error(), "restoring the original code");
    }
    tracee_ = std::move(*tracee);
    engine_->rebind(*tracee_);
    if (loader_) agent_->set_loader_handshake(0, 0, pid_);  // a waiting thread goes on as we leave
    settle_caught_events(*tracee_);
    // The loader's breakpoint, if any; a boost hit caught meanwhile is put back on its int3.
    Status engine_disarmed;
    if (engine_->armed_count() != 0) {
      engine_disarmed =
          engine_->disarm([this](uint64_t address) { return is_agent_trap(address); });
    }
    auto disarmed = agent_->disarm(*tracee_);
    auto detached = tracee_->detach();
    if (!engine_disarmed) return engine_disarmed;
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
  std::unique_ptr<AgentEngine> agent_;
  CommCache comms_;
  std::vector<ProcessWatch> children_;  ///< followed fork children, not traced
  /// Fork children with breakpoints: each traced by a session of its own, on its own thread.
  struct ChildSession {
    std::unique_ptr<runtime::ProbeRuntime> runtime;
    SessionOptions options;
    std::thread thread;
    std::atomic<bool> done{false};
    Result<SessionEnd> end = SessionEnd::TargetExited;
  };
  std::vector<std::unique_ptr<ChildSession>> child_sessions_;
  std::atomic<bool> child_sessions_stop_{false};
  std::optional<process::ForkNotices> fork_notices_;  ///< forks of processes we do not trace
  bool fork_notices_failed_ = false;                  ///< said once; not tried again
  std::optional<ExecWatch> exec_watch_;  ///< running free: execs of the probed files
  bool exec_watch_failed_ = false;       ///< said once; not tried again
  std::set<pid_t> followed_parents_;  ///< untraced followed processes whose forks we follow
  std::optional<IntervalTimers> timers_;  ///< started once BEGIN ran
  std::vector<UprobePoint> points_;        ///< every uprobe attach point, armed or waiting
  std::set<std::string> armed_files_;      ///< files whose probes are armed now
  std::optional<LoaderRendezvous> loader_; ///< set while the loader's breakpoint is armed
  /// ustack: the image's unwind tables (null when no program captures stacks), and their rows
  /// per file, kept across exec.
  const bool captures_stacks_ = agent::captures_stacks(script_.module);
  std::shared_ptr<stacks::CfiRowCache> cfi_rows_ = std::make_shared<stacks::CfiRowCache>();
  std::unique_ptr<stacks::ProcessUnwindTables> unwind_;
  abi::UnwindView unwind_view_{};
  bool loader_served_by_agent_ = false;  ///< the agent resumes the loader's int3 without us
  uint32_t loader_answered_ = 0;         ///< running free: loader stops served so far
  bool in_loop_ = false;
  /// `cpu` costs a file read per hit on the ptrace path: only when a program reads it.
  const bool reads_cpu_ = script_reads(script_, bytecode::CtxField::Cpu);
  pid_t pid_ = 0;
  bool launched_ = false;
  bool running_free_ = false;
  bool run_free_now_ = false;  ///< set by on_exec: loop() lets go of the process
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
  for (const auto& block : script.probes) {
    for (size_t point = 0; point < block.attach_points.size(); ++point) {
      if (block.attach_points[point].kind != kind) continue;
      run_program_in_dprobe(block.program_for(point), runtime);
      break;
    }
  }
}

void run_program_in_dprobe(uint32_t program, runtime::ProbeRuntime& runtime) {
  runtime::HitContext ctx;
  ctx.pid = static_cast<int32_t>(::getpid());
  ctx.tid = ctx.pid;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ctx.nsecs = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  std::snprintf(ctx.comm, sizeof ctx.comm, "dprobe");
  // BEGIN and END run in dprobe, as bpftrace's run in bpftrace: its own ids and CPU.
  ctx.uid = static_cast<uint32_t>(::getuid());
  ctx.gid = static_cast<uint32_t>(::getgid());
  const int cpu = ::sched_getcpu();
  ctx.cpu = cpu < 0 ? 0 : static_cast<uint32_t>(cpu);
  NoMemory memory;
  runtime.run(program, ctx, memory);
}

void merge_maps(const lang::CompiledScript& script, runtime::ProbeRuntime& from,
                runtime::ProbeRuntime& into) {
  into.stacks().absorb(from.stacks()); // the keys' stack ids name stacks recorded there
  for (uint32_t map = 0; map < script.module.maps.size(); ++map) {
    for (const output::MapEntry& entry : from.maps().entries(map)) {
      std::vector<uint64_t> words{entry.value};
      words.insert(words.end(), entry.rest.begin(), entry.rest.end());
      into.merge_map_entry(map, entry.key, words);
    }
  }
}

size_t count_attach_points(const lang::CompiledScript& script) {
  size_t n = 0;
  for (const auto& block : script.probes) n += block.attach_points.size();
  return n;
}

}  // namespace dprobe::probes
