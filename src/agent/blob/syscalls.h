// Raw Linux x86-64 system calls for the agent: no libc, no errno. Each returns the kernel's
// value (a negative errno on failure).
#pragma once

#include <stdint.h>

namespace dprobe::agent::blob {

inline constexpr long kSysRtSigaction = 13;
inline constexpr long kSysGetpid = 39;
inline constexpr long kSysKill = 62;
inline constexpr long kSysFutex = 202;
inline constexpr long kSysGetuid = 102;
inline constexpr long kSysGetgid = 104;
inline constexpr long kSysGetcpu = 309;
inline constexpr long kSysPrctl = 157;
inline constexpr long kSysGettid = 186;
inline constexpr long kSysClockGettime = 228;
inline constexpr long kSysTgkill = 234;
inline constexpr long kSysProcessVmReadv = 310;

inline constexpr long kPrGetName = 16;
inline constexpr long kClockMonotonic = 1;
inline constexpr int kSigTrap = 5;

inline long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

inline long syscall0(long nr) {
  return syscall6(nr, 0, 0, 0, 0, 0, 0);
}

/// struct iovec.
struct IoVec {
  void* base;
  uint64_t length;
};

/// struct timespec.
struct TimeSpec {
  int64_t seconds;
  int64_t nanoseconds;
};

} // namespace dprobe::agent::blob
