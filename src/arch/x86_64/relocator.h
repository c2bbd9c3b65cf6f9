// Moves probed instructions to an out-of-line slot so that they behave there exactly as they
// would have in place (registers, flags, memory, stack), then continue in the original code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/plan.h"
#include "common/result.h"

namespace dprobe::x86_64 {

/// Upper bound of relocate_block's output for `count` instructions, at any distance: enough
/// for the slot allocator to reserve before the address is known (relocate: max_relocated_size(1)).
[[nodiscard]] constexpr std::size_t max_relocated_size(std::size_t count) {
  // Worst single instruction: loop with prefixes (15) + jmp short (2) + absolute jmp (14), or
  // call [mem] (push 6 + jmp up to 15 + literal 8); plus one absolute jump back (14).
  return count * 32 + 14;
}

struct RelocatedCode {
  std::vector<uint8_t> code; ///< position-dependent code valid only at `to`
  uint8_t first_length = 0;  ///< length of the first instruction of `code` (one single-step)
  uint64_t resume_jump = 0;  ///< address in [to, to+code.size()) of the final jump back
  /// Single-step contract: true when executing only the first instruction of `code` has the
  /// original's whole effect, so that "step once; if pc == to + first_length, set pc to the
  /// original next address" is exact. Otherwise (call emulation, loop, syscall's rcx fix-up,
  /// far jcc, blocks) keep stepping until pc leaves the slot or reaches `resume_jump`.
  bool single_step_exact = false;
  /// Address of the `jmp [mem]` that completes an emulated `call [mem]`, or 0. A fault there (a
  /// bad function pointer) comes after the return address was pushed: to report it at the
  /// original call, set rip to the call and add 8 to rsp. (Faults elsewhere in the copy happen
  /// at its first instruction, with nothing changed, or at a branch target, as in the original.)
  uint64_t call_fault_point = 0;
  /// (original address, address in the copy) for every relocated instruction, in order: where a
  /// thread stopped at one of the original instruction boundaries continues once the original
  /// bytes are gone. After a `syscall` the entry for the next instruction names the copy's rcx
  /// fix-up that follows the copied syscall, not the copied next instruction: a system call the
  /// kernel restarts moves rip back 2 bytes, which must land on the copied syscall.
  std::vector<std::pair<uint64_t, uint64_t>> address_map;
  /// Set when the last relocated instruction is a `syscall`: (its end, the copy's rcx fix-up).
  /// Only for a thread stopped *inside* that system call (orig_rax >= 0): its rip is the end of
  /// the run, outside the replaced bytes, but a restart would move it back onto them. A thread
  /// at that address in user mode may have jumped there and must stay.
  std::optional<std::pair<uint64_t, uint64_t>> restart_after_syscall;
};

/// Whether `insn` can be moved at all (distance limits are checked by relocate).
/// Refusals name the instruction: "0x401136: cannot relocate 'int3': already a breakpoint ...".
[[nodiscard]] Status can_relocate(const Instruction& insn);

/// Makes `insn` runnable at `to`: same effect on registers, flags, memory and stack, then
/// continues at insn.end() (or the branch target) through a jump appended at the end.
/// For int3 probes: only the first byte of the original is assumed to be replaced.
[[nodiscard]] Result<RelocatedCode> relocate(const Instruction& insn, uint64_t to);

/// Same for a run of consecutive instructions whose bytes are all replaced (jump-optimized
/// probes): relocates all in order, then one jump back to the end of the last. Branches among
/// them are kept inside the copy; a branch or RIP-relative operand into the middle of an
/// instruction of the run, or a call that is not the last instruction (it would return into the
/// replaced bytes), is refused.
[[nodiscard]] Result<RelocatedCode> relocate_block(std::span<const Instruction> insns, uint64_t to);

} // namespace dprobe::x86_64
