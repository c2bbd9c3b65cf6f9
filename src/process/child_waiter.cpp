#include "process/child_waiter.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/scope_guard.h"

namespace dprobe::process {

Result<ChildWaiter> ChildWaiter::create() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return fail_errno("signalfd(SIGCHLD)");
  return ChildWaiter(UniqueFd(fd));
}

void ChildWaiter::drain() {
  signalfd_siginfo info[8];
  while (::read(signal_fd_.get(), info, sizeof info) > 0) {
  }
}

Result<std::optional<WaitResult>> ChildWaiter::wait(int timeout_ms, bool interruptible,
                                                    const Poll& poll) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));

  // Blocked before the first poll: a SIGCHLD sent between that poll and the sleep stays pending
  // and wakes the sleep, instead of being discarded by the default disposition.
  sigset_t chld;
  sigset_t saved;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::pthread_sigmask(SIG_BLOCK, &chld, &saved);
  ScopeGuard restore([&] { ::pthread_sigmask(SIG_SETMASK, &saved, nullptr); });

  for (;;) {
    drain();
    auto got = poll();
    if (!got || *got) return got;
    int sleep_ms = max_sleep_ms_;
    if (timeout_ms >= 0) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::optional<WaitResult>();
      sleep_ms = static_cast<int>(std::min<long>(left, sleep_ms));
    }
    pollfd p{signal_fd_.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, sleep_ms);
    if (rc < 0 && errno == EINTR && interruptible) {
      return fail_code(EINTR, "waiting for the target: interrupted");
    }
  }
}

} // namespace dprobe::process
