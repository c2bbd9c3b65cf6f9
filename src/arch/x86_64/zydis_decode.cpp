#include "arch/x86_64/zydis_decode.h"

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "arch/x86_64/decoder.h"

namespace dprobe::x86_64::detail {

namespace {

std::string hex_bytes(std::span<const uint8_t> code, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < std::min(code.size(), max); ++i) {
    if (i != 0) out += ' ';
    out += fmt::format("{:02x}", code[i]);
  }
  if (code.size() > max) out += " ...";
  return out;
}

bool is_rip(ZydisRegister reg) {
  return reg == ZYDIS_REGISTER_RIP || reg == ZYDIS_REGISTER_EIP;
}

} // namespace

const ZydisDecodedOperand* ZydisView::rip_memory_operand() const {
  for (ZyanU8 i = 0; i < insn.operand_count; ++i) {
    const auto& op = operands[i];
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && is_rip(op.mem.base)) return &op;
  }
  return nullptr;
}

const ZydisDecodedOperand* ZydisView::memory_operand() const {
  for (ZyanU8 i = 0; i < insn.operand_count; ++i) {
    if (operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY) return &operands[i];
  }
  return nullptr;
}

const ZydisDecodedOperand* ZydisView::relative_immediate() const {
  for (ZyanU8 i = 0; i < insn.operand_count; ++i) {
    const auto& op = operands[i];
    if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE && op.imm.is_relative) return &op;
  }
  return nullptr;
}

Result<ZydisView> decode_zydis(std::span<const uint8_t> code, uint64_t address) {
  if (code.empty()) return fail("{}: cannot decode instruction: no bytes", format_address(address));
  ZydisDecoder decoder;
  if (!ZYAN_SUCCESS(ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64))) {
    return fail("cannot initialise the x86-64 decoder");
  }
  ZydisView view{};
  ZyanStatus status =
      ZydisDecoderDecodeFull(&decoder, code.data(), code.size(), &view.insn, view.operands);
  if (status == ZYDIS_STATUS_NO_MORE_DATA) {
    return fail("{}: cannot decode instruction: truncated after {} byte(s) ({})",
                format_address(address), code.size(), hex_bytes(code, kMaxInstructionLength));
  }
  if (!ZYAN_SUCCESS(status)) {
    return fail("{}: cannot decode instruction (bytes {})", format_address(address),
                hex_bytes(code, 8));
  }
  return view;
}

std::string format_intel(const ZydisView& view, uint64_t address) {
  ZydisFormatter formatter;
  if (!ZYAN_SUCCESS(ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL))) return "?";
  // Failures to set a property only change cosmetics; ignore them.
  (void)ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_FORCE_SIZE, ZYAN_TRUE);
  (void)ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_FORCE_RELATIVE_RIPREL,
                                  ZYAN_TRUE);
  (void)ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_HEX_UPPERCASE, ZYAN_FALSE);
  (void)ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_ADDR_PADDING_ABSOLUTE,
                                  ZYDIS_PADDING_DISABLED);
  char buffer[256];
  if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&formatter, &view.insn, view.operands,
                                                    view.insn.operand_count_visible, buffer,
                                                    sizeof(buffer), address, nullptr))) {
    return "?";
  }
  return buffer;
}

} // namespace dprobe::x86_64::detail
