#include "arch/x86_64/decoder.h"

#include <algorithm>

#include <fmt/format.h>

#include "arch/x86_64/zydis_decode.h"

namespace dprobe::x86_64 {

std::string format_address(uint64_t address) {
  return fmt::format("{:#x}", address);
}

namespace {

bool ends_flow(const ZydisDecodedInstruction& insn) {
  switch (insn.mnemonic) {
  case ZYDIS_MNEMONIC_RET:
  case ZYDIS_MNEMONIC_IRET:
  case ZYDIS_MNEMONIC_IRETD:
  case ZYDIS_MNEMONIC_IRETQ:
  case ZYDIS_MNEMONIC_JMP:
  case ZYDIS_MNEMONIC_UD0:
  case ZYDIS_MNEMONIC_UD1:
  case ZYDIS_MNEMONIC_UD2:
  case ZYDIS_MNEMONIC_HLT:
    return true;
  default:
    return false;
  }
}

} // namespace

Result<Instruction> decode(std::span<const uint8_t> code, uint64_t address) {
  auto view = detail::decode_zydis(code, address);
  if (!view) return std::unexpected(view.error());
  const ZydisDecodedInstruction& z = view->insn;

  Instruction insn;
  insn.address = address;
  insn.length = z.length;
  std::copy_n(code.begin(), z.length, insn.bytes.begin());
  insn.text = detail::format_intel(*view, address);
  insn.is_rip_relative = view->rip_memory_operand() != nullptr;
  if (const ZydisDecodedOperand* rel = view->relative_immediate()) {
    ZyanU64 target = 0;
    if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&z, rel, address, &target))) {
      insn.is_relative_branch = true;
      insn.branch_target = target;
    }
  }
  insn.is_call = z.mnemonic == ZYDIS_MNEMONIC_CALL;
  insn.is_ret = z.mnemonic == ZYDIS_MNEMONIC_RET;
  insn.is_unconditional_jump = z.mnemonic == ZYDIS_MNEMONIC_JMP;
  insn.ends_flow = ends_flow(z);
  return insn;
}

Result<std::vector<Instruction>> decode_all(std::span<const uint8_t> code, uint64_t address) {
  std::vector<Instruction> out;
  std::size_t offset = 0;
  while (offset < code.size()) {
    auto insn = decode(code.subspan(offset), address + offset);
    if (!insn) return std::unexpected(insn.error());
    offset += insn->length;
    out.push_back(std::move(*insn));
  }
  return out;
}

} // namespace dprobe::x86_64
