#include "arch/x86_64/plan.h"

#include <fmt/format.h>

#include "arch/x86_64/zydis_decode.h"

namespace dprobe::x86_64 {

// What we refuse to move, and why. Everything not listed here and not rewritten by a fix-up
// is position-independent and copied verbatim.
//
//  instruction                    reason
//  -----------------------------  -------------------------------------------------------------
//  int3, int 3                    already a breakpoint: another debugger, or a deliberate trap
//                                 whose SIGTRAP handler expects its own address
//  int1 (icebp)                   debug trap; its handler would see the slot's address
//  int n (n != 0x80)              raises a signal reporting the slot's address. int 0x80 is a
//                                 system call gate that returns to the next instruction: allowed
//  ud0, ud1, ud2                  deliberate traps (assertions, JIT guards): SIGILL handlers look
//                                 the faulting address up in tables keyed by the original address
//  privileged (hlt, cli, ...)     fault in user mode; the fault would name the slot's address
//  sysenter, sysexit              sysenter returns to a kernel-chosen address, not to the next
//                                 instruction
//  xbegin, xend, xabort           RTM: xbegin names a fallback address and the int3 we place
//                                 aborts any transaction it is in; moving these changes nothing
//                                 useful and risks a #GP for xend outside a transaction
//  call far                       pushes CS and the slot's RIP as return address
//  66-prefixed relative branch    "jmp rel16": Intel ignores the prefix, AMD truncates RIP to 16
//                                 bits, and even the instruction length differs between them
//  66-prefixed indirect call      call r/m16 pushes a 2-byte return address
//  eip-relative operand (67 pfx)  the address wraps at 4 GiB from the original position
//  call rsp                       the emulated call pushes first, then would jump to rsp-8
//  call [rsp+d] with d < 0        reads below rsp, exactly where the emulation pushes
//
// Refused when emitting (relocator.cpp), because they depend on where the copy goes or on the
// neighbouring instructions:
//  RIP-relative operand out of ±2 GiB of the slot (no scratch register to build the address)
//  in a block whose bytes are all replaced: a call that is not last (it would return into the
//  replaced bytes), a RIP-relative operand aimed past the block's first byte and inside it (a
//  code address that could be jumped to later), a branch into the middle of one of its
//  instructions (branches to its instruction boundaries are re-aimed at the copy)
//
// Accepted with a fix-up rather than verbatim:
//  syscall        the kernel returns to the next instruction *in the slot* — which is fine, it
//                 then jumps back — but it also leaves that return address in rcx; we rewrite
//                 rcx with the original next address (mov r64, imm64 does not touch flags).
//                 Caveat: prctl(PR_SET_SYSCALL_USER_DISPATCH) allow-lists syscalls by address,
//                 and a seccomp filter may test seccomp_data.instruction_pointer; a program
//                 doing either sees our syscall coming from the slot. Not handled here.
//  call *         the return address pushed must be the original one, for unwinders and
//                 stack walkers; this also means a relocated call is not compatible with
//                 user-space shadow stacks (CET SHSTK): the planner must not relocate calls
//                 in processes with shadow stacks enabled.

std::string_view fixup_name(Fixup fixup) {
  switch (fixup) {
  case Fixup::kVerbatim:
    return "verbatim";
  case Fixup::kRipRelative:
    return "rip-relative";
  case Fixup::kJmp:
    return "jmp";
  case Fixup::kJcc:
    return "jcc";
  case Fixup::kCallRelative:
    return "call-relative";
  case Fixup::kCallIndirect:
    return "call-indirect";
  case Fixup::kLoop:
    return "loop";
  case Fixup::kSyscall:
    return "syscall";
  }
  return "?";
}

Error relocation_error(const Instruction& insn, std::string_view reason) {
  return Error{
      fmt::format("{}: cannot relocate '{}': {}", format_address(insn.address), insn.text, reason),
      0};
}

namespace {

using detail::ZydisView;

bool has(const ZydisDecodedInstruction& z, ZydisInstructionAttributes attribute) {
  return (z.attributes & attribute) != 0;
}

bool is_loop_family(ZydisMnemonic mnemonic) {
  switch (mnemonic) {
  case ZYDIS_MNEMONIC_LOOP:
  case ZYDIS_MNEMONIC_LOOPE:
  case ZYDIS_MNEMONIC_LOOPNE:
  case ZYDIS_MNEMONIC_JRCXZ:
  case ZYDIS_MNEMONIC_JECXZ:
    return true;
  default:
    return false;
  }
}

/// 70+cc rel8 or 0f 80+cc rel32: the only encodings whose low opcode nibble is the condition.
bool is_legacy_jcc(const ZydisDecodedInstruction& z) {
  if (z.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY) return false;
  if (z.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT) return (z.opcode & 0xf0) == 0x70;
  if (z.opcode_map == ZYDIS_OPCODE_MAP_0F) return (z.opcode & 0xf0) == 0x80;
  return false;
}

/// Refusals that depend only on what the instruction is; empty when it may be moved.
std::string_view refusal(const ZydisView& view) {
  const ZydisDecodedInstruction& z = view.insn;
  switch (z.mnemonic) {
  case ZYDIS_MNEMONIC_INT3:
    return "already a breakpoint (another debugger?)";
  case ZYDIS_MNEMONIC_INT:
    if (view.operands[0].imm.value.u == 3) return "already a breakpoint (another debugger?)";
    if (view.operands[0].imm.value.u == 0x80) return {};
    return "software interrupt: the signal it raises would report the slot's address";
  case ZYDIS_MNEMONIC_INT1:
    return "debug trap (int1): its handler would see the slot's address";
  case ZYDIS_MNEMONIC_INTO:
    return "overflow trap: its handler would see the slot's address";
  case ZYDIS_MNEMONIC_UD0:
  case ZYDIS_MNEMONIC_UD1:
  case ZYDIS_MNEMONIC_UD2:
    return "deliberate trap: a SIGILL handler would see the slot's address";
  case ZYDIS_MNEMONIC_SYSENTER:
  case ZYDIS_MNEMONIC_SYSEXIT:
    return "sysenter returns to a kernel-chosen address, not to the next instruction";
  case ZYDIS_MNEMONIC_XBEGIN:
  case ZYDIS_MNEMONIC_XEND:
  case ZYDIS_MNEMONIC_XABORT:
    return "transactional memory (RTM) instruction";
  default:
    break;
  }
  if (has(z, ZYDIS_ATTRIB_IS_PRIVILEGED)) {
    return "privileged instruction: it faults in user mode and the fault would name the slot";
  }
  if (z.mnemonic == ZYDIS_MNEMONIC_CALL && z.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) {
    return "far call: it would push the slot's address as return address";
  }
  return {};
}

} // namespace

Result<Plan> plan_relocation(const Instruction& insn) {
  auto view = detail::decode_zydis(insn.code(), insn.address);
  if (!view) return std::unexpected(relocation_error(insn, "cannot decode it"));
  const ZydisDecodedInstruction& z = view->insn;
  if (z.length != insn.length) {
    return std::unexpected(relocation_error(insn, "its bytes decode to a different length"));
  }
  if (std::string_view why = refusal(*view); !why.empty()) {
    return std::unexpected(relocation_error(insn, why));
  }

  Plan plan;
  if (const ZydisDecodedOperand* rel = view->relative_immediate()) {
    if (has(z, ZYDIS_ATTRIB_HAS_OPERANDSIZE)) {
      return std::unexpected(relocation_error(
          insn, "operand-size prefix on a relative branch (rel16: Intel and AMD disagree)"));
    }
    ZyanU64 target = 0;
    if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&z, rel, insn.address, &target))) {
      return std::unexpected(relocation_error(insn, "cannot compute its branch target"));
    }
    plan.target = target;
    if (z.mnemonic == ZYDIS_MNEMONIC_JMP) {
      plan.fixup = Fixup::kJmp;
    } else if (z.mnemonic == ZYDIS_MNEMONIC_CALL) {
      plan.fixup = Fixup::kCallRelative;
    } else if (is_loop_family(z.mnemonic)) {
      plan.fixup = Fixup::kLoop;
      plan.imm_offset = z.raw.imm[0].offset;
    } else if (z.meta.category == ZYDIS_CATEGORY_COND_BR && is_legacy_jcc(z)) {
      plan.fixup = Fixup::kJcc;
      plan.condition = z.opcode & 0x0f; // 70+cc rel8 and 0f 80+cc rel32 alike
    } else {
      return std::unexpected(relocation_error(insn, "unknown kind of relative branch"));
    }
    return plan;
  }

  const ZydisDecodedOperand* rip = view->rip_memory_operand();
  if (rip != nullptr) {
    if (rip->mem.base != ZYDIS_REGISTER_RIP || z.raw.disp.size != 32) {
      return std::unexpected(
          relocation_error(insn, "eip-relative operand (32-bit address size) cannot be moved"));
    }
    plan.has_memory_address = true;
    plan.memory_address = insn.address + insn.length + static_cast<uint64_t>(z.raw.disp.value);
    plan.disp_offset = z.raw.disp.offset;
  }

  if (z.mnemonic == ZYDIS_MNEMONIC_CALL) {
    if (has(z, ZYDIS_ATTRIB_HAS_OPERANDSIZE)) {
      return std::unexpected(relocation_error(insn, "16-bit indirect call"));
    }
    plan.fixup = Fixup::kCallIndirect;
    plan.modrm_offset = z.raw.modrm.offset;
    const ZydisDecodedOperand& op = view->operands[0];
    if (op.type == ZYDIS_OPERAND_TYPE_REGISTER && op.reg.value == ZYDIS_REGISTER_RSP) {
      return std::unexpected(
          relocation_error(insn, "call through rsp: the emulated call changes rsp first"));
    }
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY &&
        (op.mem.base == ZYDIS_REGISTER_RSP || op.mem.base == ZYDIS_REGISTER_ESP)) {
      if (op.mem.base == ZYDIS_REGISTER_ESP) {
        return std::unexpected(relocation_error(insn, "32-bit address size call through esp"));
      }
      if (op.mem.disp.value < 0) {
        return std::unexpected(relocation_error(
            insn, "reads its target below rsp, where the emulated call pushes the return address"));
      }
      plan.rsp_based = true;
    }
    return plan;
  }

  if (z.mnemonic == ZYDIS_MNEMONIC_SYSCALL) {
    plan.fixup = Fixup::kSyscall;
    return plan;
  }
  plan.fixup = rip != nullptr ? Fixup::kRipRelative : Fixup::kVerbatim;
  return plan;
}

} // namespace dprobe::x86_64
