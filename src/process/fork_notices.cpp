#include "process/fork_notices.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dprobe::process {
namespace {

// The subscription we send: one netlink message holding one connector message whose payload is
// the operation (cn_msg ends in a flexible array, so the three are laid out by hand).
constexpr size_t kSubscriptionSize = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(uint32_t));

}  // namespace

Result<ForkNotices> ForkNotices::open() {
  const int fd =
      ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd < 0) return fail_errno("process events connector: socket");
  UniqueFd socket_fd(fd);
  // A burst of forks anywhere on the machine must not overflow the queue between two drains:
  // root may go beyond rmem_max (SO_RCVBUFFORCE); otherwise the default has to do.
  const int bytes = 8 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = CN_IDX_PROC;
  address.nl_pid = 0;  // the kernel picks a unique port
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return fail_errno("process events connector: bind (needs CAP_NET_ADMIN)");
  }
  alignas(nlmsghdr) char subscribe[kSubscriptionSize] = {};
  auto* header = reinterpret_cast<nlmsghdr*>(subscribe);
  header->nlmsg_len = kSubscriptionSize;
  header->nlmsg_type = NLMSG_DONE;
  auto* message = static_cast<cn_msg*>(NLMSG_DATA(header));
  message->id.idx = CN_IDX_PROC;
  message->id.val = CN_VAL_PROC;
  message->len = sizeof(uint32_t);
  const uint32_t op = PROC_CN_MCAST_LISTEN;
  std::memcpy(message->data, &op, sizeof op);
  if (::send(fd, subscribe, sizeof subscribe, 0) != static_cast<ssize_t>(sizeof subscribe)) {
    return fail_errno("process events connector: subscribe");
  }
  return ForkNotices(std::move(socket_fd));
}

Status ForkNotices::drain(const std::function<void(pid_t parent, pid_t child)>& on_fork) {
  alignas(nlmsghdr) char buffer[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) return fail_errno("process events connector: fork notices lost");
      return fail_errno("process events connector: recv");
    }
    // The kernel (port 0) is the only sender we accept; each datagram may hold several
    // netlink messages. Lengths are checked before every read.
    size_t left = static_cast<size_t>(n);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, left);
         header = NLMSG_NEXT(header, left)) {
      if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_NOOP) continue;
      if (header->nlmsg_len < NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_event))) continue;
      const auto* message = static_cast<const cn_msg*>(NLMSG_DATA(header));
      if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) continue;
      proc_event event;
      std::memcpy(&event, message->data, sizeof event);
      if (event.what != proc_event::PROC_EVENT_FORK) continue;
      const auto& fork = event.event_data.fork;
      if (fork.child_pid != fork.child_tgid) continue;  // a new thread
      on_fork(fork.parent_tgid, fork.child_tgid);
    }
  }
}

}  // namespace dprobe::process
