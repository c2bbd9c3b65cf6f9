// The int3 mechanism without ptrace: the controller installs agent_sigtrap as the target's
// SIGTRAP handler (SA_SIGINFO | SA_RESTORER, restorer agent_sigreturn). An int3 at a probe
// address runs the probe, and the handler resumes the thread at the probe's resume address
// (the boosted copy of the replaced instruction, which jumps back). Any other SIGTRAP goes to
// the disposition the controller recorded in the header, as if we were not there.
#include "abi/agent_blob.h"
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"
#include "agent/blob/syscalls.h"

// The blob's header (blob_header.S), whose region_address the loader fills in.
extern "C" __attribute__((visibility("hidden"))) dprobe::abi::AgentBlobHeader agent_blob_header;

namespace dprobe::agent::blob {

namespace {

// The kernel's ucontext on x86-64: uc_flags, uc_link, uc_stack (24 bytes), then
// uc_mcontext.gregs[23] in this order.
constexpr uint64_t kGregsOffset = 40;
enum Greg : uint32_t {
  kR8,
  kR9,
  kR10,
  kR11,
  kR12,
  kR13,
  kR14,
  kR15,
  kRdi,
  kRsi,
  kRbp,
  kRbx,
  kRdx,
  kRax,
  kRcx,
  kRsp,
  kRip,
  kEflags,
};
// siginfo_t: si_signo, si_errno, si_code.
constexpr uint64_t kSiCodeOffset = 8;
constexpr int kSiKernel = 0x80; // what an int3 reports; kill() and tgkill() report <= 0

constexpr uint64_t kSigDfl = 0;
constexpr uint64_t kSigIgn = 1;
constexpr uint64_t kSaSiginfo = 4;

/// struct kernel_sigaction for rt_sigaction.
struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

RegionHeader* loaded_region() {
  // volatile: the loader writes this field after compilation; the compiler must not fold the 0.
  const volatile uint64_t* slot = &agent_blob_header.region_address;
  return reinterpret_cast<RegionHeader*>(*slot);
}

/// The probe whose int3 sits at `address`, -1 when none.
int64_t find_trap(RegionHeader* h, uint64_t address) {
  const uint32_t which = load_acquire(&h->trap_generation) & 1;
  uint64_t count = load_relaxed(&h->trap_count[which]);
  const abi::AreaRef ref = h->trap_index[which];
  if (count > ref.size / sizeof(abi::TrapIndexEntry))
    count = ref.size / sizeof(abi::TrapIndexEntry);
  const auto* index = area<const abi::TrapIndexEntry>(h, ref);
  uint64_t lo = 0;
  uint64_t hi = count;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    const uint64_t at = index[mid].address;
    if (at == address) {
      const uint32_t id = index[mid].probe_id;
      return id < h->probe_capacity ? static_cast<int64_t>(id) : -1;
    }
    if (at < address) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return -1;
}

void pass_on(RegionHeader* h, int signal, void* info, void* ucontext) {
  const uint64_t handler = h != nullptr ? h->sigtrap_prev_handler : kSigDfl;
  const uint64_t flags = h != nullptr ? h->sigtrap_prev_flags : 0;
  if (handler == kSigIgn) return;
  if (handler == kSigDfl) {
    // Put the default action back and raise the signal again: it is blocked while we run, so it
    // arrives as we return, and kills the process as it would have without us.
    KernelSigaction dfl{kSigDfl, 0, 0, 0};
    syscall6(kSysRtSigaction, kSigTrap, reinterpret_cast<long>(&dfl), 0, 8, 0, 0);
    syscall6(kSysTgkill, syscall0(kSysGetpid), syscall0(kSysGettid), kSigTrap, 0, 0, 0);
    return;
  }
  if (flags & kSaSiginfo) {
    reinterpret_cast<void (*)(int, void*, void*)>(handler)(signal, info, ucontext);
  } else {
    reinterpret_cast<void (*)(int)>(handler)(signal);
  }
}

constexpr long kFutexWait = 0;
constexpr long kFutexWake = 1;
constexpr long kEsrch = 3;
constexpr int32_t kRtConsistent = 0; ///< <link.h> r_debug.r_state
constexpr int kLoaderWaitSlices = 500; ///< of 10 ms: a dlopen waits 5 s at most

/// The loader's rendezvous breakpoint while the controller runs free of the process (see
/// abi::LoaderHandshake): asks the controller to arm what the loader mapped, and waits until it
/// answers, it stops asking, or it is gone. Not the common path: system calls are fine here.
void wait_for_controller(RegionHeader* h) {
  abi::LoaderHandshake& hs = h->loader;
  // A fork child inherits the int3 and the region, not the controller's attention.
  if (syscall0(kSysGetpid) != static_cast<long>(load_relaxed(&hs.target_pid))) return;
  const uint64_t state = load_relaxed(&hs.state_address);
  if (state != 0 && *reinterpret_cast<const volatile int32_t*>(state) != kRtConsistent) return;
  const uint32_t ticket = fetch_add(&hs.requests, 1u) + 1;
  syscall6(kSysFutex, reinterpret_cast<long>(&hs.requests), kFutexWake, 1, 0, 0, 0);
  const long controller = static_cast<long>(load_relaxed(&hs.controller_pid));
  for (int i = 0; i < kLoaderWaitSlices; ++i) {
    const uint32_t answered = load_acquire(&hs.answers);
    if (static_cast<int32_t>(answered - ticket) >= 0) return;
    if (load_acquire(&hs.address) == 0) return;
    if (syscall6(kSysKill, controller, 0, 0, 0, 0, 0) == -kEsrch) return;
    TimeSpec slice{0, 10'000'000};
    syscall6(kSysFutex, reinterpret_cast<long>(&hs.answers), kFutexWait,
             static_cast<long>(answered), reinterpret_cast<long>(&slice), 0, 0);
  }
}

} // namespace

} // namespace dprobe::agent::blob

extern "C" void agent_sigtrap(int signal, void* info, void* ucontext) {
  using namespace dprobe::agent::blob;
  namespace abi = dprobe::abi;
  RegionHeader* h = loaded_region();
  const int code = *reinterpret_cast<const int*>(static_cast<const uint8_t*>(info) + kSiCodeOffset);
  auto* gregs = reinterpret_cast<uint64_t*>(static_cast<uint8_t*>(ucontext) + kGregsOffset);
  if (h != nullptr && code == kSiKernel && ensure_prepared(h)) {
    const int64_t id = find_trap(h, gregs[kRip] - 1);
    if (id >= 0) {
      abi::ProbeEntry& probe = area<abi::ProbeEntry>(h, h->probes)[id];
      const uint64_t resume = load_relaxed(&probe.resume_address);
      if (resume != 0) {
        TrapRegisters trap;
        trap.rsp = gregs[kRsp];
        abi::SavedRegisters& regs = trap.regs;
        regs.r15 = gregs[kR15];
        regs.r14 = gregs[kR14];
        regs.r13 = gregs[kR13];
        regs.r12 = gregs[kR12];
        regs.r11 = gregs[kR11];
        regs.r10 = gregs[kR10];
        regs.r9 = gregs[kR9];
        regs.r8 = gregs[kR8];
        regs.rdi = gregs[kRdi];
        regs.rsi = gregs[kRsi];
        regs.rbp = gregs[kRbp];
        regs.rbx = gregs[kRbx];
        regs.rdx = gregs[kRdx];
        regs.rcx = gregs[kRcx];
        regs.rax = gregs[kRax];
        regs.rflags = gregs[kEflags];
        dispatch_hit(h, static_cast<uint32_t>(id), regs);
        const uint64_t loader = load_acquire(&h->loader.address);
        if (loader != 0 && loader == gregs[kRip] - 1) wait_for_controller(h);
        // Even when the probe or the region is disabled: the int3 is still there, and the
        // replaced instruction runs only from the resume address.
        gregs[kRip] = resume;
        return;
      }
    }
  }
  if (h != nullptr) count_event(&h->counters.foreign_traps);
  pass_on(h, signal, info, ucontext);
}
