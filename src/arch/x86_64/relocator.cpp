#include "arch/x86_64/relocator.h"

#include <optional>

#include <fmt/format.h>

#include "arch/x86_64/writer.h"
#include "arch/x86_64/zydis_decode.h"

namespace dprobe::x86_64 {

namespace {

constexpr std::size_t kPushRipLength = 6; // ff 35 disp32
constexpr uint8_t kModrmRegMask = 0x38;
constexpr uint8_t kModrmRegJmpNear = 4 << 3; // ff /4: jmp r/m64 (ff /2 is call r/m64)
constexpr uint8_t kRcx = 1;

/// Where a branch of the relocated code goes: the original address, or (in a block) the copy
/// of one of the relocated instructions.
struct Destination {
  uint64_t address = 0;
  std::optional<std::size_t> internal_index;
};

/// A rel32 field to aim, once the whole block is laid out, at the copy of instruction `index`.
/// Every field we record ends its instruction.
struct InternalFixup {
  std::size_t field_offset = 0;
  std::size_t index = 0;
};

class BlockEmitter {
 public:
  explicit BlockEmitter(uint64_t to) : writer_(to) {}

  CodeWriter& writer() { return writer_; }
  void set_call_fault_point(uint64_t address) { call_fault_point_ = address; }
  [[nodiscard]] uint64_t call_fault_point() const { return call_fault_point_; }
  std::vector<InternalFixup>& fixups() { return fixups_; }

  std::size_t jump_length_at(uint64_t pc, const Destination& dest) const {
    if (dest.internal_index || fits_rel32(pc + kJmpRel32Length, dest.address)) {
      return kJmpRel32Length;
    }
    return kJmpAbsLength;
  }

  /// jmp to `dest`; returns its length.
  std::size_t put_jump(const Destination& dest) {
    if (dest.internal_index) {
      writer_.put_jmp_rel32(writer_.pc()); // aimed later
      fixups_.push_back({writer_.size() - 4, *dest.internal_index});
      return kJmpRel32Length;
    }
    return writer_.put_jmp(dest.address);
  }

  /// jcc to `dest`; returns the length of its first instruction.
  std::size_t put_jcc(uint8_t cc, const Destination& dest) {
    if (dest.internal_index) {
      std::size_t length = writer_.put_jcc(cc, writer_.pc()); // rel32 form, aimed later
      fixups_.push_back({writer_.size() - 4, *dest.internal_index});
      return length;
    }
    return writer_.put_jcc(cc, dest.address);
  }

  /// Copies `insn` to the current pc with its RIP-relative disp32 re-aimed at `plan`'s address.
  [[nodiscard]] Status put_rip_relative(const Instruction& insn, const Plan& plan,
                                        std::span<const uint8_t> bytes) {
    uint64_t next = writer_.pc() + bytes.size();
    if (!fits_rel32(next, plan.memory_address)) {
      return std::unexpected(relocation_error(
          insn, fmt::format("RIP-relative operand {} is out of ±2 GiB reach of the slot at {}",
                            format_address(plan.memory_address), format_address(writer_.pc()))));
    }
    std::size_t start = writer_.size();
    writer_.put_bytes(bytes);
    writer_.patch_rel32(start + plan.disp_offset, bytes.size() - plan.disp_offset - 4,
                        plan.memory_address);
    return {};
  }

 private:
  CodeWriter writer_;
  std::vector<InternalFixup> fixups_;
  uint64_t call_fault_point_ = 0;
};

/// The `jmp` equivalent of an indirect `call` (ff /2 -> ff /4), to be placed at `at` right
/// after the push of the return address.
Result<std::vector<uint8_t>> indirect_jmp_for_call(const Instruction& insn, const Plan& plan) {
  if (!plan.rsp_based) {
    std::vector<uint8_t> bytes(insn.code().begin(), insn.code().end());
    bytes[plan.modrm_offset] =
        static_cast<uint8_t>((bytes[plan.modrm_offset] & ~kModrmRegMask) | kModrmRegJmpNear);
    return bytes; // a RIP-relative disp32 is re-aimed by the caller
  }
  // The push moved rsp down by 8: the same slot is now at disp+8, which may need a longer
  // displacement (or one where there was none), so let Zydis re-encode.
  auto view = detail::decode_zydis(insn.code(), insn.address);
  if (!view) return std::unexpected(relocation_error(insn, "cannot decode it"));
  ZydisEncoderRequest request;
  if (!ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
          &view->insn, view->operands, view->insn.operand_count_visible, &request))) {
    return std::unexpected(relocation_error(insn, "cannot re-encode it"));
  }
  request.mnemonic = ZYDIS_MNEMONIC_JMP;
  request.operands[0].mem.displacement += 8;
  std::array<uint8_t, ZYDIS_MAX_INSTRUCTION_LENGTH> buffer{};
  ZyanUSize length = buffer.size();
  if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstruction(&request, buffer.data(), &length))) {
    return std::unexpected(relocation_error(insn, "cannot encode the equivalent rsp-based jmp"));
  }
  return std::vector<uint8_t>(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(length));
}

/// Emits one instruction's relocated form; returns the length of its first emitted instruction.
Result<std::size_t> emit_one(BlockEmitter& emitter, const Instruction& insn, const Plan& plan,
                             const Destination& dest) {
  CodeWriter& w = emitter.writer();
  switch (plan.fixup) {
  case Fixup::kVerbatim:
    w.put_bytes(insn.code());
    return insn.length;

  case Fixup::kRipRelative: {
    if (auto s = emitter.put_rip_relative(insn, plan, insn.code()); !s) {
      return std::unexpected(s.error());
    }
    return insn.length;
  }

  case Fixup::kJmp:
    // Both forms are one instruction: e9 rel32 (5) or ff 25 (6, literal follows).
    return emitter.put_jump(dest) == kJmpRel32Length ? kJmpRel32Length : 6;

  case Fixup::kJcc:
    return emitter.put_jcc(plan.condition, dest);

  case Fixup::kCallRelative: {
    // push qword ptr [rip+N]  ; N = length of the jmp: the literal follows it
    // jmp target
    // .quad original return address
    std::size_t jump_length = emitter.jump_length_at(w.pc() + kPushRipLength, dest);
    w.put_push_rip(static_cast<int32_t>(jump_length));
    emitter.put_jump(dest);
    w.put_u64(insn.end());
    return kPushRipLength;
  }

  case Fixup::kCallIndirect: {
    // push qword ptr [rip+N]; jmp reg/[mem]; .quad original return address
    auto jmp = indirect_jmp_for_call(insn, plan);
    if (!jmp) return std::unexpected(jmp.error());
    w.put_push_rip(static_cast<int32_t>(jmp->size()));
    if (insn.bytes[plan.modrm_offset] >> 6 != 3) emitter.set_call_fault_point(w.pc());
    if (plan.has_memory_address) {
      if (auto s = emitter.put_rip_relative(insn, plan, *jmp); !s) {
        return std::unexpected(s.error());
      }
    } else {
      w.put_bytes(*jmp);
    }
    w.put_u64(insn.end());
    return kPushRipLength;
  }

  case Fixup::kLoop: {
    // loopX/jrcxz have only a rel8 form, so keep the instruction and bounce:
    //   loopX +2          ; taken -> the jmp to the target
    //   jmp short +N      ; not taken -> past it
    //   jmp target        ; N bytes
    std::vector<uint8_t> bytes(insn.code().begin(), insn.code().end());
    bytes[plan.imm_offset] = 2;
    w.put_bytes(bytes);
    std::size_t jump_length = emitter.jump_length_at(w.pc() + 2, dest);
    w.put_jmp_short(static_cast<int8_t>(jump_length));
    emitter.put_jump(dest);
    return insn.length;
  }

  case Fixup::kSyscall:
    w.put_bytes(insn.code());
    w.put_mov_imm64(kRcx, insn.end());
    return insn.length;
  }
  return std::unexpected(relocation_error(insn, "internal error: unknown fix-up"));
}

Result<RelocatedCode> relocate_run(std::span<const Instruction> insns, uint64_t to,
                                   bool whole_run_replaced) {
  if (insns.empty()) return fail("{}: nothing to relocate", format_address(to));
  for (std::size_t i = 1; i < insns.size(); ++i) {
    if (insns[i].address != insns[i - 1].end()) {
      return fail("{}: cannot relocate a block: instruction does not follow {} (which ends at {})",
                  format_address(insns[i].address), format_address(insns[i - 1].address),
                  format_address(insns[i - 1].end()));
    }
  }
  const uint64_t start = insns.front().address;
  const uint64_t end = insns.back().end();
  auto inside_replaced = [&](uint64_t address) {
    return whole_run_replaced && address > start && address < end;
  };

  BlockEmitter emitter(to);
  std::vector<std::size_t> copy_offsets(insns.size());
  std::vector<Fixup> fixups(insns.size());
  RelocatedCode out;
  bool exact = insns.size() == 1;
  for (std::size_t i = 0; i < insns.size(); ++i) {
    const Instruction& insn = insns[i];
    auto plan = plan_relocation(insn);
    if (!plan) return std::unexpected(plan.error());
    if (whole_run_replaced && plan->is_call() && i + 1 != insns.size()) {
      return std::unexpected(relocation_error(
          insn, "a call inside the replaced bytes would return into them (it must come last)"));
    }
    if (plan->has_memory_address && inside_replaced(plan->memory_address)) {
      return std::unexpected(relocation_error(
          insn, fmt::format("RIP-relative operand {} points into the replaced bytes",
                            format_address(plan->memory_address))));
    }
    Destination dest{plan->target, std::nullopt};
    if (plan->has_target() && inside_replaced(plan->target)) {
      for (std::size_t j = 1; j < insns.size(); ++j) {
        if (insns[j].address == plan->target) dest.internal_index = j;
      }
      if (!dest.internal_index) {
        return std::unexpected(relocation_error(
            insn, fmt::format("branches into the middle of a replaced instruction ({})",
                              format_address(plan->target))));
      }
    }

    copy_offsets[i] = emitter.writer().size();
    fixups[i] = plan->fixup;
    auto first = emit_one(emitter, insn, *plan, dest);
    if (!first) return std::unexpected(first.error());
    if (i == 0) {
      out.first_length = static_cast<uint8_t>(*first);
      switch (plan->fixup) {
      case Fixup::kVerbatim:
      case Fixup::kRipRelative:
      case Fixup::kJmp:
        break;
      case Fixup::kJcc:
        exact = exact && *first == 6; // the far form is two instructions
        break;
      default:
        exact = false;
      }
    }
  }

  CodeWriter& w = emitter.writer();
  out.resume_jump = w.pc();
  w.put_jmp(end);
  for (const InternalFixup& fixup : emitter.fixups()) {
    w.patch_rel32(fixup.field_offset, 0, to + copy_offsets[fixup.index]);
  }
  // Right after a relocated syscall (2 bytes) comes its rcx fix-up: see RelocatedCode.
  auto after_syscall = [&](std::size_t i) { return to + copy_offsets[i] + insns[i].length; };
  out.address_map.reserve(insns.size());
  for (std::size_t i = 0; i < insns.size(); ++i) {
    uint64_t copy =
        i > 0 && fixups[i - 1] == Fixup::kSyscall ? after_syscall(i - 1) : to + copy_offsets[i];
    out.address_map.emplace_back(insns[i].address, copy);
  }
  if (fixups.back() == Fixup::kSyscall) {
    out.restart_after_syscall.emplace(end, after_syscall(insns.size() - 1));
  }
  out.single_step_exact = exact;
  out.call_fault_point = emitter.call_fault_point();
  out.code = w.take();
  return out;
}

} // namespace

Status can_relocate(const Instruction& insn) {
  auto plan = plan_relocation(insn);
  if (!plan) return std::unexpected(plan.error());
  return {};
}

Result<RelocatedCode> relocate(const Instruction& insn, uint64_t to) {
  return relocate_run({&insn, 1}, to, /*whole_run_replaced=*/false);
}

Result<RelocatedCode> relocate_block(std::span<const Instruction> insns, uint64_t to) {
  return relocate_run(insns, to, /*whole_run_replaced=*/true);
}

} // namespace dprobe::x86_64
