// Running system calls inside the target: Tracee::remote_syscall and map_memory_near.
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "process/near_gap.h"
#include "process/syscall_names.h"
#include "process/tracee.h"
#include "process/wait_status.h"

namespace dprobe::process {
namespace {

constexpr std::array<uint8_t, 2> kSyscallInsn{0x0f, 0x05};

uint64_t signal_bit(int signal) {
  return uint64_t{1} << (signal - 1);
}

// Blocked while the injected call runs, so no handler starts on borrowed registers. Signals the
// kernel forces on faults stay unblocked: forcing a blocked one resets the target's handler.
uint64_t injected_call_mask() {
  uint64_t mask = ~uint64_t{0};
  for (int s : {SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGKILL, SIGSTOP}) {
    mask &= ~signal_bit(s);
  }
  return mask;
}

bool is_fault_signal(int signal) {
  return signal == SIGSEGV || signal == SIGBUS || signal == SIGILL || signal == SIGFPE ||
         signal == SIGSYS || signal == SIGTRAP;
}

bool usable_for_syscall(const Mapping& m) {
  return m.executable && m.path != "[vdso]" && m.path != "[vsyscall]" && m.path != "[uprobes]";
}

} // namespace

Status Tracee::leave_syscall_event(ThreadInfo& t) {
  // At a PTRACE_EVENT_EXEC/CLONE/FORK stop the system call has not returned: the kernel would
  // overwrite RAX on the way out. Let it return and stop before any user instruction runs.
  // A signal that comes first is delivered later, and that stop will do (our interrupt follows
  // after the next resume and is handled as stale).
  return stop_in_interrupt(t, /*signal_stop_will_do=*/true);
}

Status Tracee::retrap_group_stop(ThreadInfo& t) {
  // Back from the injected call the thread sits in a SIGTRAP stop; PTRACE_LISTEN needs a
  // PTRACE_EVENT_STOP, and a dprobe that died now would leave that SIGTRAP to be delivered.
  return stop_in_interrupt(t, /*signal_stop_will_do=*/false);
}

Status Tracee::stop_in_interrupt(ThreadInfo& t, bool signal_stop_will_do) {
  // An interrupt, then a resume: the thread stops again before running any user instruction.
  const pid_t tid = t.tid;
  if (auto st = ptrace_interrupt(tid); !st) return st;
  t.interrupt_pending = true;
  if (auto st = ptrace_cont(tid, 0); !st) return st;
  for (;;) {
    auto status = wait_for_thread(tid);
    if (!status) return std::unexpected(status.error());
    DecodedStatus d = decode_wait_status(*status);
    ThreadInfo& now = *threads_.find(tid);
    switch (d.kind) {
    case WaitKind::Exited:
    case WaitKind::Killed:
      handle_status(tid, *status);
      return fail("thread {} exited", tid);
    case WaitKind::EventStop:
      now.interrupt_pending = false;
      now.stop = is_stop_signal(d.signal) ? StopKind::GroupStop : StopKind::Interrupt;
      return {};
    case WaitKind::SignalStop:
      ::syscall(SYS_tgkill, pid_, tid, d.signal);
      if (signal_stop_will_do) {
        now.stop = StopKind::Quiet;
        return {};
      }
      [[fallthrough]];
    case WaitKind::PtraceEvent:
    case WaitKind::SyscallStop:
      if (auto st = ptrace_cont(tid, 0); !st) return st;
      break;
    }
  }
}

Result<Tracee::SyscallSite> Tracee::syscall_site(uint64_t rip) {
  auto maps = read_maps_file(maps_path());
  if (!maps) return std::unexpected(maps.error());
  auto usable_at = [&](uint64_t address) {
    for (const auto& m : *maps) {
      if (m.contains(address) && m.contains(address + 1)) return usable_for_syscall(m);
    }
    return false;
  };
  // A thread stopped in a system call sits right after its `syscall`: reuse it, writing nothing.
  if (rip >= 2 && usable_at(rip - 2)) {
    std::array<uint8_t, 2> before{};
    if (read_memory(rip - 2, before) && before == kSyscallInsn) return SyscallSite{rip - 2, false};
  }
  if (usable_at(rip)) return SyscallSite{rip, true};
  for (const auto& m : *maps) {
    if (usable_for_syscall(m) && m.end - m.start >= 2) return SyscallSite{m.start, true};
  }
  return fail("no executable memory to run a system call from");
}

Result<uint64_t> Tracee::remote_syscall(pid_t tid, long number, std::array<uint64_t, 6> args) {
  const std::string what = fmt::format("remote {} in thread {}", syscall_name(number), tid);
  ThreadInfo* t = threads_.find(tid);
  if (t == nullptr) return fail("{}: not a traced thread of process {}", what, pid_);
  if (!is_stopped(t->state)) return fail("{}: the thread is not stopped", what);

  if (t->stop == StopKind::SyscallEvent) {
    if (auto st = leave_syscall_event(*t); !st) return with_context(st.error(), what);
  }
  const StopKind original_stop = threads_.find(tid)->stop;
  auto saved = ptrace_get_registers(tid);
  if (!saved) return with_context(saved.error(), what);
  std::optional<siginfo_t> saved_info;
  if (original_stop == StopKind::SignalDelivery) {
    auto info = ptrace_get_siginfo(tid);
    if (!info) return with_context(info.error(), what);
    saved_info = *info;
  }
  auto saved_mask = ptrace_get_sigmask(tid);
  if (!saved_mask) return with_context(saved_mask.error(), what);
  auto found_site = syscall_site(saved->rip);
  if (!found_site) return with_context(found_site.error(), what);
  const SyscallSite site = *found_site;

  std::array<uint8_t, 2> borrowed{};
  if (site.borrow) {
    if (auto st = read_memory(site.address, borrowed); !st) return with_context(st.error(), what);
    if (auto st = write_memory(site.address, kSyscallInsn); !st) {
      return with_context(st.error(), what);
    }
  }

  Registers regs = *saved;
  regs.rip = site.address;
  regs.rax = static_cast<uint64_t>(number);
  regs.rdi = args[0];
  regs.rsi = args[1];
  regs.rdx = args[2];
  regs.r10 = args[3];
  regs.r8 = args[4];
  regs.r9 = args[5];
  // orig_rax = -1: the kernel's restart logic must not touch our registers on the way out of
  // this stop (the thread may have been stopped inside an interrupted system call).
  regs.orig_rax = ~uint64_t{0};

  Result<uint64_t> outcome = fail("{}: not run", what);
  bool group_seen = false;
  std::vector<int> deferred;
  Status st = ptrace_set_registers(tid, regs);
  if (st) st = ptrace_set_sigmask(tid, injected_call_mask());
  if (st) st = ptrace_single_step(tid, 0);
  while (st) {
    auto status = wait_for_thread(tid);
    if (!status) {
      st = std::unexpected(status.error());
      break;
    }
    DecodedStatus d = decode_wait_status(*status);
    if (d.kind == WaitKind::Exited || d.kind == WaitKind::Killed) {
      handle_status(tid, *status);
      return fail("{}: the thread exited", what);
    }
    if (d.kind == WaitKind::EventStop) {
      threads_.find(tid)->interrupt_pending = false;
      if (is_stop_signal(d.signal)) group_seen = true;
      st = ptrace_single_step(tid, 0);
      continue;
    }
    if (d.kind != WaitKind::SignalStop) {
      st = ptrace_single_step(tid, 0);
      continue;
    }
    auto info = ptrace_get_siginfo(tid);
    auto now = ptrace_get_registers(tid);
    if (!info || !now) {
      st = std::unexpected(!info ? info.error() : now.error());
      break;
    }
    const bool from_kernel = info->si_code > 0;
    if (d.signal == SIGTRAP && from_kernel && now->rip == site.address + 2) {
      outcome = now->rax;
      break;
    }
    if (from_kernel && is_fault_signal(d.signal)) {
      outcome = fail("{}: {} at {:#x}", what, strsignal(d.signal), now->rip);
      break;
    }
    // Someone sent a signal meanwhile: hold it back and send it again afterwards.
    deferred.push_back(d.signal);
    st = ptrace_single_step(tid, 0);
  }
  if (!st) outcome = with_context(st.error(), what);

  // Put everything back: bytes, mask, registers, and the kind of stop the caller knows.
  Status restored;
  if (site.borrow) restored = write_memory(site.address, borrowed);
  if (auto r = ptrace_set_sigmask(tid, *saved_mask); !r && restored) restored = r;
  if (auto r = ptrace_set_registers(tid, *saved); !r && restored) restored = r;
  ThreadInfo& after = *threads_.find(tid);
  if (saved_info) {
    // Now in our SIGTRAP stop: with the original siginfo it is the original signal-delivery
    // stop again (resume(tid, sig) delivers exactly what it would have).
    if (auto r = ptrace_set_siginfo(tid, *saved_info); !r && restored) restored = r;
    after.stop = StopKind::SignalDelivery;
  } else if (original_stop == StopKind::GroupStop || group_seen) {
    if (auto r = retrap_group_stop(after); !r && restored) restored = r;
  } else {
    // Not left in our SIGTRAP stop: if dprobe died now, the kernel would deliver that SIGTRAP
    // to the program on detach and kill it. An interrupt stop is harmless to be left in.
    if (auto r = retrap_group_stop(after); !r && restored) restored = r;
  }
  for (int s : deferred)
    ::syscall(SYS_tgkill, pid_, tid, s);
  if (!restored) return with_context(restored.error(), fmt::format("{}: restoring", what));
  if (!outcome) return outcome;
  const auto value = static_cast<int64_t>(*outcome);
  if (value < 0 && value >= -4095) return fail_code(static_cast<int>(-value), "{}", what);
  return *outcome;
}

Result<uint64_t> Tracee::map_memory_near(pid_t tid, uint64_t near, size_t length, int prot) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t size = (length + page - 1) / page * page;
  auto maps = read_maps_file(maps_path());
  if (!maps) return std::unexpected(maps.error());
  auto candidates = candidate_addresses_near(*maps, near, size, page);
  constexpr size_t kMaxTries = 8;
  for (size_t i = 0; i < candidates.size() && i < kMaxTries; ++i) {
    const uint64_t want = candidates[i];
    auto got =
        remote_syscall(tid, SYS_mmap,
                       {want, size, static_cast<uint64_t>(prot),
                        static_cast<uint64_t>(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE),
                        ~uint64_t{0}, 0});
    if (!got) {
      if (got.error().errno_value == EEXIST) continue; // taken after we read the maps
      return std::unexpected(got.error());
    }
    if (*got == want) return want;
    // A kernel without MAP_FIXED_NOREPLACE treats the address as a hint.
    (void)remote_syscall(tid, SYS_munmap, {*got, size, 0, 0, 0, 0});
    return fail("mapping {} bytes near {:#x}: the kernel placed them at {:#x} instead of {:#x}",
                size, near, *got, want);
  }
  return fail("no free gap of {} bytes within 2 GiB of {:#x} in process {}", size, near, pid_);
}

} // namespace dprobe::process
