// Private to arch/x86_64: the full Zydis view of one instruction.
// Public headers of this component must not include this file (nothing else may see Zydis).
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>
#include <span>

#include "common/result.h"

namespace dprobe::x86_64::detail {

struct ZydisView {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];

  /// The first memory operand based on RIP or EIP, or nullptr.
  [[nodiscard]] const ZydisDecodedOperand* rip_memory_operand() const;
  /// The first memory operand (explicit or not), or nullptr.
  [[nodiscard]] const ZydisDecodedOperand* memory_operand() const;
  /// The relative immediate operand of a branch, or nullptr.
  [[nodiscard]] const ZydisDecodedOperand* relative_immediate() const;
};

/// Decodes with the 64-bit decoder; errors name `address` and the leading bytes.
[[nodiscard]] Result<ZydisView> decode_zydis(std::span<const uint8_t> code, uint64_t address);

/// Intel syntax as we print it everywhere: sizes forced, lower-case hex, RIP-relative operands
/// shown as [rip+disp], branch targets absolute.
[[nodiscard]] std::string format_intel(const ZydisView& view, uint64_t address);

} // namespace dprobe::x86_64::detail
