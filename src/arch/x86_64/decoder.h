// Decoding of x86-64 instructions into a small, Zydis-free description.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace dprobe::x86_64 {

/// Longest legal x86 instruction.
inline constexpr std::size_t kMaxInstructionLength = 15;

/// One decoded instruction and the facts the probe planner and relocator need about it.
struct Instruction {
  uint64_t address = 0; ///< where it lives in the target
  uint8_t length = 0;
  std::array<uint8_t, kMaxInstructionLength> bytes{}; ///< only the first `length` are meaningful
  std::string text;                ///< Intel syntax, e.g. "mov eax, dword ptr [rip+0x2ee6]"
  bool is_rip_relative = false;    ///< has a RIP-relative memory operand (incl. lea)
  bool is_relative_branch = false; ///< jmp/jcc/call/loop*/jrcxz/xbegin with a relative immediate
  std::optional<uint64_t> branch_target; ///< absolute target of a relative branch
  bool is_call = false;
  bool is_ret = false;
  bool is_unconditional_jump = false;
  bool ends_flow = false; ///< ret, iret, jmp (any), ud0/1/2, hlt: no fall-through

  [[nodiscard]] uint64_t end() const { return address + length; }
  [[nodiscard]] std::span<const uint8_t> code() const { return {bytes.data(), length}; }
};

/// Decodes the one instruction at the start of `code`, which lives at `address` in the target.
/// Error: "0x401136: cannot decode instruction (bytes 0f ff ...)".
[[nodiscard]] Result<Instruction> decode(std::span<const uint8_t> code, uint64_t address);

/// Linear sweep of a whole function body. Fails at the first undecodable byte (the error names
/// its address) and when the last instruction runs past the end of `code`.
[[nodiscard]] Result<std::vector<Instruction>> decode_all(std::span<const uint8_t> code,
                                                          uint64_t address);

/// "0x401136" — how addresses appear in every message of this component.
[[nodiscard]] std::string format_address(uint64_t address);

} // namespace dprobe::x86_64
