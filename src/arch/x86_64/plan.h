// Analysis half of the relocator: what one instruction needs to run at another address.
// Like the kernel's uprobes (analyse once, then emit) and frida-gum's per-instruction switch.
#pragma once

#include <cstdint>
#include <string_view>

#include "arch/x86_64/decoder.h"
#include "common/result.h"

namespace dprobe::x86_64 {

/// How an instruction is rewritten when it is moved.
enum class Fixup : uint8_t {
  kVerbatim,     ///< position-independent: copied byte for byte
  kRipRelative,  ///< RIP-relative memory operand: disp32 rewritten, same absolute address
  kJmp,          ///< jmp rel8/rel32 -> jmp rel32, or jmp qword ptr [rip+0] + literal
  kJcc,          ///< jcc rel8/rel32 -> jcc rel32, or inverted short jcc over an absolute jmp
  kCallRelative, ///< call rel32 -> push qword ptr [rip+lit] (original return address); jmp target
  kCallIndirect, ///< call reg/[mem] -> push qword ptr [rip+lit]; jmp reg/[mem] (fixed up)
  kLoop,         ///< loop/loope/loopne/jrcxz/jecxz rel8 -> op +2; jmp short over; jmp target
  kSyscall,      ///< syscall; mov rcx, original next address (rcx is the kernel's return RIP)
};

[[nodiscard]] std::string_view fixup_name(Fixup fixup);

/// The fix-ups one instruction needs; independent of where it will be moved to.
struct Plan {
  Fixup fixup = Fixup::kVerbatim;
  uint64_t target = 0; ///< kJmp, kJcc, kCallRelative, kLoop: absolute branch target
  bool has_memory_address = false;
  uint64_t memory_address = 0; ///< absolute address of a RIP-relative memory operand
  uint8_t disp_offset = 0;     ///< offset of that operand's disp32 inside the instruction
  uint8_t condition = 0;       ///< kJcc: condition code (low nibble of 0f 8x)
  uint8_t imm_offset = 0;      ///< kLoop: offset of the rel8
  uint8_t modrm_offset = 0;    ///< kCallIndirect: offset of the ModRM byte
  bool rsp_based = false;      ///< kCallIndirect: memory operand addressed from rsp

  [[nodiscard]] bool is_call() const {
    return fixup == Fixup::kCallRelative || fixup == Fixup::kCallIndirect;
  }
  [[nodiscard]] bool has_target() const {
    return fixup == Fixup::kJmp || fixup == Fixup::kJcc || fixup == Fixup::kCallRelative ||
           fixup == Fixup::kLoop;
  }
};

/// Decides how `insn` can be moved, or refuses with a one-line reason naming it:
/// "0x401136: cannot relocate 'int3': already a breakpoint (another debugger?)".
[[nodiscard]] Result<Plan> plan_relocation(const Instruction& insn);

/// The refusal message format shared by the analysis and the emitter.
[[nodiscard]] Error relocation_error(const Instruction& insn, std::string_view reason);

} // namespace dprobe::x86_64
