#include "probes/process_watch.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <fmt/format.h>

namespace dprobe::probes {

Result<ProcessWatch> ProcessWatch::open(pid_t pid, bool our_child) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return fail_errno("pidfd_open({})", pid);
  return ProcessWatch(pid, UniqueFd(fd), our_child);
}

bool ProcessWatch::wait_exit(int timeout_ms, int also) {
  pollfd p[2] = {{pidfd_.get(), POLLIN, 0}, {also, POLLIN, 0}};
  int n = ::poll(p, also >= 0 ? 2 : 1, timeout_ms);
  if (n <= 0) return false;  // timeout, or EINTR: the caller checks its stop flag
  if ((p[0].revents & POLLIN) == 0) return false;
  // A pidfd polls readable when the process has exited. Our own child is reaped here so it
  // does not linger as a zombie.
  if (our_child_) ::waitpid(pid_, nullptr, WNOHANG);
  return true;
}

bool process_gone(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return true;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace dprobe::probes
