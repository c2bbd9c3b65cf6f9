#include "probes/exec_watch.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

namespace dprobe::probes {

std::optional<ExecWatch> ExecWatch::open(const std::vector<std::string>& paths) {
  const int fd = ::fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
                                 O_RDONLY | O_CLOEXEC | O_LARGEFILE);
  if (fd < 0) return std::nullopt;
  ExecWatch watch(UniqueFd{fd});
  bool any = false;
  for (const std::string& path : paths) {
    any |= ::fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, AT_FDCWD, path.c_str()) == 0;
  }
  if (!any) return std::nullopt;
  return watch;
}

std::optional<std::pair<pid_t, int>> ExecWatch::next() {
  if (pending_.empty()) {
    alignas(fanotify_event_metadata) char buffer[4096];
    const ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    auto* event = reinterpret_cast<const fanotify_event_metadata*>(buffer);
    ssize_t left = n;
    while (FAN_EVENT_OK(event, left)) {
      if (event->fd >= 0) pending_.emplace_back(event->pid, event->fd);
      event = FAN_EVENT_NEXT(event, left);
    }
    if (pending_.empty()) return std::nullopt;
  }
  auto first = pending_.front();
  pending_.erase(pending_.begin());
  return first;
}

void ExecWatch::allow(int event_fd) const {
  fanotify_response response{event_fd, FAN_ALLOW};
  (void)!::write(fd_.get(), &response, sizeof response);
  ::close(event_fd);
}

}  // namespace dprobe::probes
