// Memory placed in the target for the agent: the shared region, code, and unmapping.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <string_view>

#include "common/scope_guard.h"
#include "process/tracee.h"

namespace dprobe::process {
namespace {

// Shows in the target's maps as "/memfd:dprobe-region (deleted)", so a later dprobe (or a
// person) can tell what the mapping is.
constexpr std::string_view kRegionName = "dprobe-region";

// Not in every <linux/memfd.h> yet (Linux 6.3): a non-executable memfd. Hosts with
// vm.memfd_noexec=2 refuse memfd_create without it.
constexpr uint64_t kMfdNoexecSeal = 0x0008;

uint64_t page_size() {
  return static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// `length` rounded up to whole pages; nullopt for 0 or when rounding overflows.
std::optional<uint64_t> page_rounded(size_t length) {
  const uint64_t page = page_size();
  if (length == 0 || length > std::numeric_limits<uint64_t>::max() - page) return std::nullopt;
  return (length + page - 1) / page * page;
}

} // namespace

SharedMapping::~SharedMapping() {
  if (local != nullptr) ::munmap(local, length);
}

Result<std::unique_ptr<SharedMapping>> Tracee::map_shared_region(pid_t tid, size_t length) {
  const std::string what = fmt::format("shared region of {} bytes in process {}", length, pid_);
  const auto size = page_rounded(length);
  if (!size) return fail("{}: invalid length", what);
  auto remote = [&](long number, std::array<uint64_t, 6> args) {
    return remote_syscall(tid, number, args);
  };

  // The name must be in target memory for memfd_create to read it.
  auto scratch = remote(SYS_mmap, {0, page_size(), PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, ~uint64_t{0}, 0});
  if (!scratch) return with_context(scratch.error(), what);
  ScopeGuard unmap_scratch([&] { (void)remote(SYS_munmap, {*scratch, page_size(), 0, 0, 0, 0}); });
  std::string name(kRegionName);
  if (auto st = write_memory(
          *scratch, std::span(reinterpret_cast<const uint8_t*>(name.c_str()), name.size() + 1));
      !st) {
    return with_context(st.error(), what);
  }

  // CLOEXEC: should dprobe die before closing it, an exec in the target still drops the fd.
  // ALLOW_SEALING: dprobe seals the size below.
  const uint64_t flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  auto fd = remote(SYS_memfd_create, {*scratch, flags | kMfdNoexecSeal, 0, 0, 0, 0});
  if (!fd && fd.error().errno_value == EINVAL) {
    fd = remote(SYS_memfd_create, {*scratch, flags, 0, 0, 0, 0}); // kernel before 6.3
  }
  if (!fd) return with_context(fd.error(), what);
  ScopeGuard close_fd([&] { (void)remote(SYS_close, {*fd, 0, 0, 0, 0, 0}); });

  if (auto r = remote(SYS_ftruncate, {*fd, *size, 0, 0, 0, 0}); !r) {
    return with_context(r.error(), what);
  }
  auto address = remote(SYS_mmap, {0, *size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0});
  if (!address) return with_context(address.error(), what);
  ScopeGuard unmap_region([&] { (void)remote(SYS_munmap, {*address, *size, 0, 0, 0, 0}); });

  // The fd table of the thread that ran memfd_create: right even when the leader is a zombie
  // or the thread was cloned without CLONE_FILES.
  const std::string path = fmt::format("/proc/{}/task/{}/fd/{}", pid_, tid, *fd);
  UniqueFd local_fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!local_fd.valid()) return fail_errno("{}: {}", what, path);
  struct stat st {};
  if (::fstat(local_fd.get(), &st) != 0) return fail_errno("{}: {}", what, path);
  if (static_cast<uint64_t>(st.st_size) != *size) {
    return fail("{}: {} has size {}, not {}", what, path, st.st_size, *size);
  }
  // The region is untrusted: a target that shrank the file would make dprobe's reads fault.
  if (::fcntl(local_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail_errno("{}: sealing {}", what, path);
  }
  void* local = ::mmap(nullptr, *size, PROT_READ | PROT_WRITE, MAP_SHARED, local_fd.get(), 0);
  if (local == MAP_FAILED) return fail_errno("{}: local mmap", what);
  auto mapping = std::make_unique<SharedMapping>(*address, *size, local);

  // The mappings keep the file alive; the fds are no longer needed.
  close_fd.dismiss();
  if (auto r = remote(SYS_close, {*fd, 0, 0, 0, 0, 0}); !r) return with_context(r.error(), what);
  unmap_scratch.dismiss();
  if (auto r = remote(SYS_munmap, {*scratch, page_size(), 0, 0, 0, 0}); !r) {
    return with_context(r.error(), what);
  }
  unmap_region.dismiss();
  return mapping;
}

Result<uint64_t> Tracee::map_code(pid_t tid, std::span<const uint8_t> bytes, int prot) {
  const std::string what = fmt::format("code of {} bytes in process {}", bytes.size(), pid_);
  const auto size = page_rounded(bytes.size());
  if (!size) return fail("{}: nothing to map", what);
  auto address = remote_syscall(
      tid, SYS_mmap,
      {0, *size, static_cast<uint64_t>(prot), MAP_PRIVATE | MAP_ANONYMOUS, ~uint64_t{0}, 0});
  if (!address) return with_context(address.error(), what);
  // /proc/PID/mem writes with FOLL_FORCE, so pages without PROT_WRITE can be filled too.
  if (auto st = write_memory(*address, bytes); !st) {
    (void)remote_syscall(tid, SYS_munmap, {*address, *size, 0, 0, 0, 0});
    return with_context(st.error(), what);
  }
  return *address;
}

Status Tracee::unmap(pid_t tid, uint64_t address, size_t length) {
  auto r = remote_syscall(tid, SYS_munmap, {address, length, 0, 0, 0, 0});
  if (!r) return std::unexpected(r.error());
  return {};
}

} // namespace dprobe::process
