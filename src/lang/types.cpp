#include "lang/types.h"

#include <string_view>

namespace dprobe::lang {

namespace {

std::string int_name(bool is_signed, uint8_t size) {
  return (is_signed ? "int" : "uint") + std::to_string(size * 8);
}

} // namespace

std::string Type::name() const {
  switch (kind) {
  case TypeKind::None:
    return "none";
  case TypeKind::Void:
    return "void";
  case TypeKind::Int:
    return int_name(is_signed, size);
  case TypeKind::String:
    return "string";
  case TypeKind::Count:
    return "count";
  case TypeKind::Pointer:
    return int_name(is_signed, size) + " *";
  case TypeKind::Buffer:
    return "buffer";
  case TypeKind::Timestamp:
    return "timestamp";
  case TypeKind::Stack:
    return "ustack";
  }
  return "?";
}

Type integer_type_named(std::string_view name) {
  bool is_signed = true;
  if (name.starts_with("u")) {
    is_signed = false;
    name.remove_prefix(1);
  }
  if (name == "int8") return Type::integer(is_signed, 1);
  if (name == "int16") return Type::integer(is_signed, 2);
  if (name == "int32") return Type::integer(is_signed, 4);
  if (name == "int64") return Type::integer(is_signed, 8);
  return Type::none();
}

} // namespace dprobe::lang
