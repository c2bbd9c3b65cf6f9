// Notices when a process we no longer trace ends (running free: dprobe is detached).
#pragma once

#include <sys/types.h>

#include "common/fd.h"
#include "common/result.h"

namespace dprobe::probes {

class ProcessWatch {
 public:
  /// `our_child`: dprobe launched it, so it must also be reaped (waitpid) once it ends.
  [[nodiscard]] static Result<ProcessWatch> open(pid_t pid, bool our_child);
  /// Waits up to `timeout_ms` for the process to end; true once it has. The wait also ends
  /// (returning false) when `also` (another fd, -1: none) becomes readable.
  [[nodiscard]] bool wait_exit(int timeout_ms, int also = -1);
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  ProcessWatch(pid_t pid, UniqueFd pidfd, bool our_child)
      : pid_(pid), pidfd_(std::move(pidfd)), our_child_(our_child) {}
  pid_t pid_;
  UniqueFd pidfd_;
  bool our_child_;
};

/// The process no longer exists (or is a zombie).
[[nodiscard]] bool process_gone(pid_t pid);

}  // namespace dprobe::probes
