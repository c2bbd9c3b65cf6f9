#include "probes/machine_wide.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "probes/exec_watch.h"
#include "probes/interval_timers.h"
#include "common/fd.h"
#include "probes/process_watch.h"
#include "probes/site_resolver.h"
#include "process/maps.h"

namespace dprobe::probes {
namespace {

/// How often /proc is scanned for processes that started or exec'd since.
constexpr auto kScanPeriod = std::chrono::milliseconds(10);

/// What a pid runs: a pid that execs keeps its number, so it is looked at again when this
/// changes.
struct Image {
  dev_t device = 0;
  ino_t inode = 0;
  friend bool operator==(const Image&, const Image&) = default;
};

std::optional<Image> image_of(pid_t pid) {
  struct stat st {};
  if (::stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) != 0) return std::nullopt;
  return Image{st.st_dev, st.st_ino};
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return pids;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && pid > 0) pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return pids;
}

size_t thread_count(pid_t pid) {
  size_t n = 0;
  DIR* dir = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (dir == nullptr) return 0;
  while (const dirent* entry = ::readdir(dir)) n += entry->d_name[0] != '.';
  ::closedir(dir);
  return n;
}

/// One probed process: its session runs on `thread` with a runtime of its own.
struct Member {
  pid_t pid = 0;
  std::unique_ptr<runtime::ProbeRuntime> runtime;
  SessionOptions options;
  std::thread thread;
  std::atomic<bool> done{false};
  Result<SessionEnd> end = SessionEnd::TargetExited;
};

class MachineWide {
 public:
  MachineWide(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
              const SessionOptions& options, const std::atomic<bool>& stop, std::FILE* out,
              runtime::OutputFormat format)
      : script_(script), runtime_(runtime), options_(options), stop_(stop), out_(out),
        format_(format), resolver_(options.working_directory) {}

  Result<SessionEnd> run() {
    if (options_.on_armed) options_.on_armed(count_attach_points(script_));
    run_special_probes(script_, runtime_, lang::ProbeKind::Begin);
    IntervalTimers timers(script_, monotonic_ns());
    exec_watch_ = ExecWatch::open(probed_paths());
    if (options_.verbose) {
      fmt::print(options_.diagnostics, "machine-wide: new processes found by {}\n",
                 exec_watch_ ? "fanotify exec events (armed before they run) and a /proc scan"
                             : "a /proc scan every 10 ms (no fanotify here)");
    }
    SessionEnd end = SessionEnd::StopRequested;
    for (;;) {
      take_execs();
      scan();
      run_due_intervals(timers, runtime_);
      if (reap_finished()) end = SessionEnd::ScriptExit;
      if (runtime_.exit_requested()) end = SessionEnd::ScriptExit;
      if (end == SessionEnd::ScriptExit || stop_.load(std::memory_order_relaxed)) break;
      wait_a_moment();
    }
    // No process may stay held in execve by a watch nobody reads any more.
    while (exec_watch_) {
      auto event = exec_watch_->next();
      if (!event) break;
      exec_watch_->allow(event->second);
    }
    // Every session disarms its process and returns; their maps join ours.
    members_stop_.store(true);
    for (auto& member : members_) {
      if (member->thread.joinable()) member->thread.join();
      merge(*member);
    }
    members_.clear();
    return end;
  }

 private:
  /// Looks at every process not seen yet with its current image, and probes those that map the
  /// file of every uprobe of the script.
  void scan() {
    for (pid_t pid : all_pids()) {
      if (pid == self_) continue;
      const std::optional<Image> image = image_of(pid);
      if (!image) continue;  // a kernel thread, gone, or not ours to look at
      auto [it, fresh] = seen_.try_emplace(pid, *image);
      if (!fresh) {
        if (it->second == *image) continue;
        it->second = *image;  // it exec'd: what it runs now may be probed
      }
      // A probed process's session follows its execs itself.
      if (probed_.contains(pid) || !maps_every_file(pid)) continue;
      start(pid);
    }
  }

  std::vector<std::string> probed_paths() const {
    std::vector<std::string> paths;
    for (const auto& block : script_.probes) {
      for (const auto& ap : block.attach_points) {
        if (ap.kind == lang::ProbeKind::Uprobe && ap.path.find('/') != std::string::npos) {
          paths.push_back(ap.path);
        }
      }
    }
    return paths;
  }

  void wait_a_moment() {
    if (!exec_watch_) {
      std::this_thread::sleep_for(kScanPeriod);
      return;
    }
    pollfd p{exec_watch_->fd(), POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(kScanPeriod.count()));
  }

  /// Processes held in execve of a probed file: a single-threaded one is taken by a session
  /// before its new image runs; others go on at once (the scan finds them).
  void take_execs() {
    while (exec_watch_) {
      auto event = exec_watch_->next();
      if (!event) return;
      const auto [pid, event_fd] = *event;
      if (pid == self_ || probed_.contains(pid) || thread_count(pid) != 1) {
        exec_watch_->allow(event_fd);
        continue;
      }
      const ExecWatch* watch = &*exec_watch_;
      start(pid, [watch, event_fd] { watch->allow(event_fd); });
    }
  }

  bool maps_every_file(pid_t pid) {
    auto maps = process::read_maps(pid);
    if (!maps) return false;
    resolver_.set_process(pid);
    bool any = false;
    for (const auto& block : script_.probes) {
      for (const auto& ap : block.attach_points) {
        if (ap.kind != lang::ProbeKind::Uprobe) continue;
        auto mapped = resolver_.is_mapped(ap, *maps);
        if (!mapped || !*mapped) return false;
        any = true;
      }
    }
    return any;
  }

  void start(pid_t pid, std::function<void()> exec_seized = nullptr) {
    probed_.insert(pid);
    auto member = std::make_unique<Member>();
    member->pid = pid;
    member->runtime = std::make_unique<runtime::ProbeRuntime>(script_, out_, format_);
    member->options = options_;
    member->options.pid = pid;
    member->options.command.clear();
    member->options.on_armed = nullptr;
    member->options.run_script_probes = false;
    member->options.exec_seized = std::move(exec_seized);
    Member* m = member.get();
    member->thread = std::thread([this, m] {
      m->end = run_session(script_, *m->runtime, m->options, members_stop_);
      m->runtime->flush();
      m->done.store(true);
    });
    members_.push_back(std::move(member));
  }

  /// Merges and forgets members whose process ended; true when one ran exit().
  bool reap_finished() {
    bool exit_requested = false;
    for (auto it = members_.begin(); it != members_.end();) {
      Member& m = **it;
      if (!m.done.load()) {
        ++it;
        continue;
      }
      m.thread.join();
      probed_.erase(m.pid);
      if (m.runtime->exit_requested()) exit_requested = true;
      const bool gone = process_gone(m.pid);
      if (!m.end && !gone) {
        // Not an abort: this process is skipped (until it execs), the others go on.
        fmt::print(options_.diagnostics, "dprobe: process {} not probed: {}\n", m.pid,
                   m.end.error().text());
      } else {
        // Ended (a session racing its process's exit may say so as an error): the number may
        // come back as another process, to be looked at afresh.
        seen_.erase(m.pid);
      }
      merge(m);
      it = members_.erase(it);
    }
    return exit_requested;
  }

  void merge(Member& m) { merge_maps(script_, *m.runtime, runtime_); }

  const lang::CompiledScript& script_;
  runtime::ProbeRuntime& runtime_;
  const SessionOptions& options_;
  const std::atomic<bool>& stop_;
  std::FILE* out_;
  runtime::OutputFormat format_;
  SiteResolver resolver_;
  const pid_t self_ = ::getpid();
  std::map<pid_t, Image> seen_;
  std::set<pid_t> probed_;  ///< processes with a session running
  std::vector<std::unique_ptr<Member>> members_;
  std::atomic<bool> members_stop_{false};
  std::optional<ExecWatch> exec_watch_;  ///< outlives every member: they answer its events
};

}  // namespace

Result<SessionEnd> run_machine_wide(const lang::CompiledScript& script,
                                    runtime::ProbeRuntime& runtime, const SessionOptions& options,
                                    const std::atomic<bool>& stop) {
  MachineWide fleet(script, runtime, options, stop, runtime.output(), runtime.format());
  return fleet.run();
}

}  // namespace dprobe::probes
