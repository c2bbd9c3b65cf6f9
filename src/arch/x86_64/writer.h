// Emits x86-64 machine code for a known final address (frida-gum's X86Writer, in small).
// Encodings are written by hand so that the exact bytes are predictable and testable.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dprobe::x86_64 {

inline constexpr uint8_t kInt3 = 0xcc;
inline constexpr std::size_t kJmpRel32Length = 5; ///< e9 rel32
inline constexpr std::size_t kJmpAbsLength = 14;  ///< ff 25 00000000 + 8-byte target

/// True if a rel32 field whose instruction ends at `next` can reach `target`.
[[nodiscard]] bool fits_rel32(uint64_t next, uint64_t target);

/// `jmp rel32` placed at `from` going to `to` (5 bytes). Empty if `to` is out of ±2 GiB reach:
/// callers that cannot fall back to a longer form must check `fits_rel32(from + 5, to)`.
[[nodiscard]] std::vector<uint8_t> encode_jmp_rel32(uint64_t from, uint64_t to);

/// `int3` (1 byte).
[[nodiscard]] std::vector<uint8_t> encode_int3();

/// Appends instructions to a buffer that will run at `base`.
class CodeWriter {
 public:
  explicit CodeWriter(uint64_t base) : base_(base) {}

  [[nodiscard]] uint64_t base() const { return base_; }
  /// Address at which the next byte will live.
  [[nodiscard]] uint64_t pc() const { return base_ + code_.size(); }
  [[nodiscard]] std::size_t size() const { return code_.size(); }
  [[nodiscard]] const std::vector<uint8_t>& code() const { return code_; }
  [[nodiscard]] std::vector<uint8_t> take() { return std::move(code_); }

  void put_u8(uint8_t value) { code_.push_back(value); }
  void put_bytes(std::span<const uint8_t> bytes);
  void put_u32(uint32_t value);
  void put_u64(uint64_t value);

  /// `jmp rel32` (precondition: fits_rel32(pc() + 5, target)).
  void put_jmp_rel32(uint64_t target);
  /// `jmp qword ptr [rip+0]; .quad target` — reaches anywhere, 14 bytes, clobbers nothing.
  void put_jmp_abs(uint64_t target);
  /// The shortest of the two above that reaches `target`; returns its length (5 or 14).
  std::size_t put_jmp(uint64_t target);
  /// Length put_jmp would use at the current pc.
  [[nodiscard]] std::size_t jmp_length(uint64_t target) const;

  /// `jcc rel32` for condition code `cc` (0..15, the low nibble of 0f 8x) when in reach, else
  /// `j!cc +14; jmp qword ptr [rip+0]; .quad target`. Returns the length of the first instruction.
  std::size_t put_jcc(uint8_t cc, uint64_t target);
  /// `jmp short rel8`.
  void put_jmp_short(int8_t rel);
  /// `push qword ptr [rip+disp]`: disp counts from the end of this 6-byte instruction.
  void put_push_rip(int32_t disp);
  /// `mov r64, imm64` for rax..r15 (register number 0..15). Does not touch the flags.
  void put_mov_imm64(uint8_t reg, uint64_t value);

  /// Rewrites a rel32 field at `field_offset` (an offset into code()) whose instruction ends at
  /// `field_offset + 4 + tail`, to reach `target` (precondition: in reach).
  void patch_rel32(std::size_t field_offset, std::size_t tail, uint64_t target);

 private:
  uint64_t base_;
  std::vector<uint8_t> code_;
};

} // namespace dprobe::x86_64
