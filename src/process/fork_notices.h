// Fork notices for processes dprobe does not trace, from the kernel's process events connector
// (netlink NETLINK_CONNECTOR, CN_IDX_PROC). ptrace would report a fork too, but only by making
// every traced thread stop for every signal -- an int3-boost hit included -- so a process dprobe
// runs free of, and the children of a followed child, are followed through these instead.
#pragma once

#include <sys/types.h>

#include <functional>

#include "common/fd.h"
#include "common/result.h"

namespace dprobe::process {

class ForkNotices {
 public:
  /// Subscribes to the machine's process events. Needs CAP_NET_ADMIN (in the initial network
  /// namespace); the error says so. Every fork after this returns is reported by drain().
  [[nodiscard]] static Result<ForkNotices> open();

  /// Reads every notice queued so far (never blocks) and calls `on_fork(parent, child)` for each
  /// new process (not for new threads), parent being the forking process (its tgid), in the
  /// order the kernel made them: a child's own forks come after the notice of its birth.
  /// The kernel queues a fork's notice before fork() returns in the parent or runs the child, so
  /// after a process is seen to exit, one drain reports every child it ever made. Error: notices
  /// were lost (the socket's queue overflowed) or the socket failed.
  [[nodiscard]] Status drain(const std::function<void(pid_t parent, pid_t child)>& on_fork);

 private:
  explicit ForkNotices(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace dprobe::process
