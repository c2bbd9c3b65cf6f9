#include "arch/x86_64/writer.h"

#include <limits>

namespace dprobe::x86_64 {

namespace {

constexpr uint8_t kJmpRel32 = 0xe9;
constexpr uint8_t kJmpRel8 = 0xeb;
constexpr uint8_t kJccRel8Base = 0x70; // 70+cc rel8
constexpr uint8_t kTwoByteEscape = 0x0f;
constexpr uint8_t kJccRel32Base = 0x80; // 0f 80+cc rel32

int32_t rel32(uint64_t next, uint64_t target) {
  return static_cast<int32_t>(static_cast<int64_t>(target - next));
}

} // namespace

bool fits_rel32(uint64_t next, uint64_t target) {
  auto delta = static_cast<int64_t>(target - next);
  return delta >= std::numeric_limits<int32_t>::min() &&
         delta <= std::numeric_limits<int32_t>::max();
}

std::vector<uint8_t> encode_jmp_rel32(uint64_t from, uint64_t to) {
  if (!fits_rel32(from + kJmpRel32Length, to)) return {};
  CodeWriter writer(from);
  writer.put_jmp_rel32(to);
  return writer.take();
}

std::vector<uint8_t> encode_int3() {
  return {kInt3};
}

void CodeWriter::put_bytes(std::span<const uint8_t> bytes) {
  code_.insert(code_.end(), bytes.begin(), bytes.end());
}

void CodeWriter::put_u32(uint32_t value) {
  for (int i = 0; i < 4; ++i)
    code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void CodeWriter::put_u64(uint64_t value) {
  for (int i = 0; i < 8; ++i)
    code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void CodeWriter::put_jmp_rel32(uint64_t target) {
  put_u8(kJmpRel32);
  put_u32(static_cast<uint32_t>(rel32(pc() + 4, target)));
}

void CodeWriter::put_jmp_abs(uint64_t target) {
  // ff /4 with mod=00 rm=101: jmp qword ptr [rip+0]; the target is the literal that follows.
  put_bytes(std::to_array<uint8_t>({0xff, 0x25, 0x00, 0x00, 0x00, 0x00}));
  put_u64(target);
}

std::size_t CodeWriter::jmp_length(uint64_t target) const {
  return fits_rel32(pc() + kJmpRel32Length, target) ? kJmpRel32Length : kJmpAbsLength;
}

std::size_t CodeWriter::put_jmp(uint64_t target) {
  std::size_t length = jmp_length(target);
  if (length == kJmpRel32Length) {
    put_jmp_rel32(target);
  } else {
    put_jmp_abs(target);
  }
  return length;
}

std::size_t CodeWriter::put_jcc(uint8_t cc, uint64_t target) {
  if (fits_rel32(pc() + 6, target)) {
    put_u8(kTwoByteEscape);
    put_u8(static_cast<uint8_t>(kJccRel32Base | cc));
    put_u32(static_cast<uint32_t>(rel32(pc() + 4, target)));
    return 6;
  }
  // Conditions come in complementary pairs differing in bit 0 (jo/jno, jb/jae, ...).
  put_u8(static_cast<uint8_t>(kJccRel8Base | (cc ^ 1)));
  put_u8(static_cast<uint8_t>(kJmpAbsLength));
  put_jmp_abs(target);
  return 2;
}

void CodeWriter::put_jmp_short(int8_t rel) {
  put_u8(kJmpRel8);
  put_u8(static_cast<uint8_t>(rel));
}

void CodeWriter::put_push_rip(int32_t disp) {
  put_u8(0xff); // ff /6, mod=00 rm=101
  put_u8(0x35);
  put_u32(static_cast<uint32_t>(disp));
}

void CodeWriter::put_mov_imm64(uint8_t reg, uint64_t value) {
  put_u8(static_cast<uint8_t>(0x48 | (reg >> 3))); // REX.W, REX.B for r8..r15
  put_u8(static_cast<uint8_t>(0xb8 | (reg & 7)));
  put_u64(value);
}

void CodeWriter::patch_rel32(std::size_t field_offset, std::size_t tail, uint64_t target) {
  uint64_t next = base_ + field_offset + 4 + tail;
  auto value = static_cast<uint32_t>(rel32(next, target));
  for (int i = 0; i < 4; ++i)
    code_[field_offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

} // namespace dprobe::x86_64
