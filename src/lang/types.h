// Types of expressions, variables and map values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dprobe::lang {

enum class TypeKind : uint8_t {
  None,      ///< not known yet, or an error already reported (suppresses follow-on errors)
  Void,      ///< statements-only calls: printf, exit, delete
  Int,       ///< an integer of `size` bytes, signed or unsigned; held in 64 bits, extended
  String,    ///< up to 63 bytes, NUL-terminated in a 64-byte field
  Count,     ///< the value of count(): only assignable to a map
  Pointer,   ///< (T*)e: an address whose target is an integer of `size` bytes
  Buffer,    ///< buf(p, n): bytes printed with %r
  Timestamp, ///< strftime(fmt, ns): printed with %s
  Stack,     ///< ustack: a stack id (abi/unwind.h), a map key or printed with %s / print()
};

struct Type {
  TypeKind kind = TypeKind::None;
  bool is_signed = false; ///< Int (and a Pointer's target) only
  uint8_t size = 8;       ///< bytes of an Int, or of a Pointer's target: 1, 2, 4 or 8
  bool stack_perf = false;   ///< Stack: printed as ustack(perf) (else as bpftrace's ustack)
  uint8_t stack_frames = 0;  ///< Stack: frames kept at most (ustack(N))

  static Type none() { return {}; }
  static Type void_type() { return {TypeKind::Void, false, 8}; }
  static Type integer(bool is_signed, uint8_t size = 8) { return {TypeKind::Int, is_signed, size}; }
  static Type string() { return {TypeKind::String, false, 8}; }
  static Type count() { return {TypeKind::Count, false, 8}; }
  static Type pointer(bool is_signed, uint8_t size) { return {TypeKind::Pointer, is_signed, size}; }
  static Type buffer() { return {TypeKind::Buffer, false, 8}; }
  static Type timestamp() { return {TypeKind::Timestamp, false, 8}; }
  static Type stack(bool perf, uint8_t frames) { return {TypeKind::Stack, false, 8, perf, frames}; }

  [[nodiscard]] bool is_none() const { return kind == TypeKind::None; }
  [[nodiscard]] bool is_int() const { return kind == TypeKind::Int; }
  [[nodiscard]] bool is_string() const { return kind == TypeKind::String; }
  [[nodiscard]] bool is_pointer() const { return kind == TypeKind::Pointer; }
  /// An integer or a pointer: anything held in one register.
  [[nodiscard]] bool is_scalar() const { return is_int() || is_pointer(); }
  /// Same kind (signedness and width are properties of the value, not a different type).
  [[nodiscard]] bool same_kind(const Type& other) const { return kind == other.kind; }
  /// "int64", "uint8", "string", "count", "void", "none", "uint32 *", "buffer", "timestamp",
  /// "ustack".
  [[nodiscard]] std::string name() const;
};

/// The integer type a cast names ("uint8", "int64"), or None when `name` is not one.
[[nodiscard]] Type integer_type_named(std::string_view name);

} // namespace dprobe::lang
