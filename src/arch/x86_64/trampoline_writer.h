// Per-probe trampolines for jump-optimized probes: the probed instructions are replaced with a
// `jmp rel32` to code that saves the registers, calls the agent's dispatcher, restores them, runs
// a relocated copy of the replaced instructions and jumps back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/relocator.h"
#include "common/result.h"

namespace dprobe::x86_64 {

/// Bytes skipped below the probed code's rsp before anything is pushed (the SysV red zone).
inline constexpr uint64_t kTrampolineRedZone = 128;
/// The pushed frame: rflags then 15 general registers, read by the agent as abi::SavedRegisters
/// {r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax, rflags}.
inline constexpr uint64_t kTrampolineFrameSize = 16 * 8;
/// Longest save/call/restore sequence (far call, flags restored), before the relocated copy.
inline constexpr std::size_t kTrampolineOverhead = 120;

/// Upper bound of a trampoline replacing `count` instructions, for reserving space before the
/// trampoline's address (and so the relocated copy's exact size) is known.
[[nodiscard]] constexpr std::size_t max_trampoline_size(std::size_t count) {
  return kTrampolineOverhead + max_relocated_size(count);
}

struct TrampolineSpec {
  uint64_t address = 0; ///< where the trampoline will live in the target
  uint32_t probe_id = 0;
  uint64_t region = 0;   ///< 1st argument of the dispatcher (the shared region)
  uint64_t dispatch = 0; ///< agent_dispatch(Region*, uint32_t probe_id, SavedRegisters*)
  /// Restore rflags after the dispatcher. False only at a function's entry, where the SysV ABI
  /// leaves the status flags undefined and DF clear (and the dispatcher returns with DF clear).
  bool save_flags = true;
  std::span<const Instruction> replaced; ///< the instructions the jmp overwrites, in order
  /// How many of `replaced` run before the dispatcher is called (a probe on an exit: JumpPlan::
  /// run_before). Their copies come first; no branch, call or end of flow among them.
  std::size_t run_before = 0;
};

struct Trampoline {
  std::vector<uint8_t> code;    ///< valid only at TrampolineSpec::address
  uint64_t relocated_start = 0; ///< address of the relocated copy of `replaced`
  uint64_t resume = 0;          ///< where the copy jumps back: replaced.back().end()
  /// Original instruction address -> address in the copy, for every replaced instruction: where
  /// a thread stopped inside the replaced bytes continues (see RelocatedCode::address_map).
  std::vector<std::pair<uint64_t, uint64_t>> address_map;
  /// See RelocatedCode::restart_after_syscall: for threads inside a system call only.
  std::optional<std::pair<uint64_t, uint64_t>> restart_after_syscall;
  /// Return address of the call to the dispatcher: a thread whose stack holds it is inside the
  /// dispatcher, and the trampoline must stay mapped until it leaves.
  uint64_t dispatch_return = 0;
};

/// Writes the trampoline. With run_before = k > 0 it starts with the copies of the first k
/// replaced instructions (a thread stopped at one of them continues in its copy; one stopped at
/// the k-th, the probed exit, continues at the save sequence so that its hit is not lost).
/// Its entry sequence is fixed, since the agent reads the frame:
///   save_flags:  lea rsp, [rsp-128]; pushfq; cld
///   otherwise:   lea rsp, [rsp-136]    (the rflags slot is left unwritten: nothing reads it)
///   push rax, rcx, rdx, rbx, rbp, rsi, rdi, r8 .. r15
///   mov rdi, region; mov esi, probe_id; mov rdx, rsp; mov rbx, rsp; and rsp, -16
///   call dispatch (rel32 when in reach, else mov rax, imm64; call rax)
///   mov rsp, rbx; pop r15 .. r8, rdi, rsi, rbp, rbx, rdx, rcx
///   [save_flags: restore CF PF AF ZF SF OF DF from the frame with test/std/add/sahf]
///   pop rax; lea rsp, [rsp+136]
///   <relocated copy of `replaced`, ending with a jump to replaced.back().end()>
/// The dispatcher sees the probed code's rsp as frame + 128 + 128, and whatever it writes into
/// the frame is what the probed code continues with (of rflags: CF PF AF ZF SF OF DF, and only
/// when save_flags). `cld` is emitted only when save_flags: mid-function DF may be set, and
/// compiled code assumes it clear. The flags are restored with test/add/sahf rather than popfq,
/// which costs 5 times more (measured: bare trampoline 3.7 ns, popfq +4.6 ns, this +0.9 ns);
/// the flags it leaves alone (TF, AC, ID) are ones the dispatcher does not change.
/// Vector, x87 and mask registers are not saved: the dispatcher must not touch them (build the
/// agent with -mgeneral-regs-only).
/// Refuses when the jump at replaced.front() cannot reach `address`, or when relocate_block
/// refuses the instructions at the copy's address.
[[nodiscard]] Result<Trampoline> write_trampoline(const TrampolineSpec& spec);

/// Where a thread stopped at `pc` must continue once the jump is written over the replaced
/// bytes, or nullopt when it can stay: `pc` outside them, or at their first byte (it will take
/// the jump). `in_syscall`: the thread is stopped inside a system call (orig_rax >= 0).
/// Error when `pc` is inside the replaced bytes but not at one of their instruction boundaries.
[[nodiscard]] Result<std::optional<uint64_t>> relocated_pc(const Trampoline& trampoline,
                                                           uint64_t pc, bool in_syscall);

} // namespace dprobe::x86_64
