// Waiting for wait-status changes of tracees with a timeout, without busy polling.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>

#include "common/fd.h"
#include "common/result.h"

namespace dprobe::process {

struct WaitResult {
  pid_t pid = 0;
  int status = 0;
};

/// Sleeps on SIGCHLD (through a signalfd, with SIGCHLD blocked in the calling thread only while
/// waiting) between non-blocking polls. The kernel sends SIGCHLD to the tracer for every
/// ptrace-stop and exit of a tracee. If another thread of dprobe takes the SIGCHLD (it has it
/// unblocked), the wait still ends within kMaxSleepMs: events are late, never lost.
class ChildWaiter {
 public:
  static constexpr int kMaxSleepMs = 20;
  using Poll = std::function<Result<std::optional<WaitResult>>()>;

  [[nodiscard]] static Result<ChildWaiter> create();

  /// Calls `poll` until it returns a status or `timeout_ms` passes (-1: no limit; 0: one poll).
  /// When `interruptible`, a signal handled by this thread ends the wait with errno EINTR.
  [[nodiscard]] Result<std::optional<WaitResult>> wait(int timeout_ms, bool interruptible,
                                                       const Poll& poll);

  /// Longest sleep between polls (default kMaxSleepMs). Several tracer threads in dprobe take
  /// each other's SIGCHLD: each then polls more often instead of sleeping a slice per event.
  void set_max_sleep_ms(int ms) { max_sleep_ms_ = ms; }

 private:
  explicit ChildWaiter(UniqueFd fd) : signal_fd_(std::move(fd)) {}
  void drain();

  UniqueFd signal_fd_;
  int max_sleep_ms_ = kMaxSleepMs;
};

} // namespace dprobe::process
