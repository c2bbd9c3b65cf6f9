// fanotify exec permission events on probed files: a process about to run one is held in
// execve until dprobe answers, so it can be taken before its first instruction (machine-wide
// runs, and a process dprobe runs free of). Needs CAP_SYS_ADMIN. If dprobe dies, the kernel
// answers for it (a closed group allows every pending event): no exec waits on a dprobe that
// is gone.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/fd.h"

namespace dprobe::probes {

class ExecWatch {
 public:
  /// Watches every path that can be marked; nullopt when none can (or fanotify is refused).
  static std::optional<ExecWatch> open(const std::vector<std::string>& paths);

  [[nodiscard]] int fd() const { return fd_.get(); }

  /// The next pending event: the pid (tgid) that execs and the event's fd to answer; nullopt
  /// when none.
  std::optional<std::pair<pid_t, int>> next();

  /// Lets the exec go on (and closes the event's fd). Safe from any thread.
  void allow(int event_fd) const;

 private:
  explicit ExecWatch(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  std::vector<std::pair<pid_t, int>> pending_;
};

}  // namespace dprobe::probes
