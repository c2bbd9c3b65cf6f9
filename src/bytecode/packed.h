// The packed byte layout of map keys and printf arguments, shared by the VM (which packs them),
// the map stores (which use the bytes as keys) and output/ (which unpacks them to print).
// Freestanding: only <stdint.h>/<stddef.h>, no std:: library.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace dprobe::bytecode {

/// One element of a packed record (a map key or a printf argument list), in order, no padding.
///   Int    - 8 bytes, little-endian two's complement
///   String - 64 bytes, the characters then NUL padding; at most 63 characters, so always
///   NUL-terminated
///   Buffer - 72 bytes: the length (8 bytes, little-endian), then kMaxBufferLength data bytes
///   (zero beyond the length); from buf(p, n), printed with %r
///   UStack, UStackPerf - 8 bytes: a stack id (abi::stack_id) printed as bpftrace prints
///   ustack / ustack(perf); 0 is the empty stack
enum class FieldKind : uint8_t { Int = 0, String = 1, Buffer = 2, UStack = 3, UStackPerf = 4 };

inline constexpr bool is_stack_field(FieldKind kind) {
  return kind == FieldKind::UStack || kind == FieldKind::UStackPerf;
}

inline constexpr uint32_t kIntFieldSize = 8;
inline constexpr uint32_t kStringFieldSize = 64;
/// Longest string a String field holds (bpftrace's default strlen of 64 includes the NUL).
inline constexpr uint32_t kMaxStringLength = kStringFieldSize - 1;

/// Most bytes buf(p, n) keeps (bpftrace's default BPFTRACE_STRLEN).
inline constexpr uint32_t kMaxBufferLength = 64;
inline constexpr uint32_t kBufferFieldSize = 8 + kMaxBufferLength;

inline constexpr uint32_t field_size(FieldKind kind) {
  return kind == FieldKind::String   ? kStringFieldSize
         : kind == FieldKind::Buffer ? kBufferFieldSize
                                     : kIntFieldSize;
}

inline void store_u64_le(uint8_t* dst, uint64_t value) {
  for (int i = 0; i < 8; ++i)
    dst[i] = static_cast<uint8_t>(value >> (8 * i));
}

inline uint64_t load_u64_le(const uint8_t* src) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<uint64_t>(src[i]) << (8 * i);
  return value;
}

/// Length of the string in a String field (bytes before the first NUL, at most kMaxStringLength).
inline uint32_t string_field_length(const uint8_t* field) {
  uint32_t n = 0;
  while (n < kMaxStringLength && field[n] != 0)
    ++n;
  return n;
}

} // namespace dprobe::bytecode
