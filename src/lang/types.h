// Types of expressions, variables and map values.
#pragma once

#include <cstdint>
#include <string>

namespace dprobe::lang {

enum class TypeKind : uint8_t {
  None,   ///< not known yet, or an error already reported (suppresses follow-on errors)
  Void,   ///< statements-only calls: printf, exit, delete
  Int,    ///< 64-bit integer, signed or unsigned
  String, ///< up to 63 bytes, NUL-terminated in a 64-byte field
  Count,  ///< the value of count(): only assignable to a map
};

struct Type {
  TypeKind kind = TypeKind::None;
  bool is_signed = false; ///< Int only

  static Type none() { return {}; }
  static Type void_type() { return {TypeKind::Void, false}; }
  static Type integer(bool is_signed) { return {TypeKind::Int, is_signed}; }
  static Type string() { return {TypeKind::String, false}; }
  static Type count() { return {TypeKind::Count, false}; }

  [[nodiscard]] bool is_none() const { return kind == TypeKind::None; }
  [[nodiscard]] bool is_int() const { return kind == TypeKind::Int; }
  [[nodiscard]] bool is_string() const { return kind == TypeKind::String; }
  /// Same kind (signedness is a property of the value, not a different type).
  [[nodiscard]] bool same_kind(const Type& other) const { return kind == other.kind; }
  /// "int64", "uint64", "string", "count", "void", "none".
  [[nodiscard]] std::string name() const;
};

} // namespace dprobe::lang
