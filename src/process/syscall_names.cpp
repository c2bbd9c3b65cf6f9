#include "process/syscall_names.h"

#include <sys/syscall.h>

#include <fmt/format.h>

namespace dprobe::process {

std::string syscall_name(long number) {
  switch (number) {
  case SYS_read:
    return "read";
  case SYS_write:
    return "write";
  case SYS_close:
    return "close";
  case SYS_mmap:
    return "mmap";
  case SYS_mprotect:
    return "mprotect";
  case SYS_munmap:
    return "munmap";
  case SYS_getpid:
    return "getpid";
  case SYS_gettid:
    return "gettid";
  case SYS_ftruncate:
    return "ftruncate";
  case SYS_openat:
    return "openat";
  case SYS_memfd_create:
    return "memfd_create";
  case SYS_prctl:
    return "prctl";
  case SYS_arch_prctl:
    return "arch_prctl";
  case SYS_madvise:
    return "madvise";
  default:
    return fmt::format("syscall {}", number);
  }
}

} // namespace dprobe::process
