#include "lang/types.h"

namespace dprobe::lang {

std::string Type::name() const {
  switch (kind) {
  case TypeKind::None:
    return "none";
  case TypeKind::Void:
    return "void";
  case TypeKind::Int:
    return is_signed ? "int64" : "uint64";
  case TypeKind::String:
    return "string";
  case TypeKind::Count:
    return "count";
  }
  return "?";
}

} // namespace dprobe::lang
