#include "output/map_printer.h"

#include <algorithm>

#include <fmt/format.h>

namespace dprobe::output {

namespace {

using bytecode::FieldKind;

/// Compares two packed keys field by field; <0, 0, >0.
int compare_keys(std::span<const FieldKind> kinds, std::string_view a, std::string_view b) {
  size_t offset = 0;
  for (FieldKind kind : kinds) {
    const uint32_t size = bytecode::field_size(kind);
    if (offset + size > a.size() || offset + size > b.size()) break;
    const auto* pa = reinterpret_cast<const uint8_t*>(a.data()) + offset;
    const auto* pb = reinterpret_cast<const uint8_t*>(b.data()) + offset;
    if (kind == FieldKind::Int) {
      const auto va = static_cast<int64_t>(bytecode::load_u64_le(pa));
      const auto vb = static_cast<int64_t>(bytecode::load_u64_le(pb));
      if (va != vb) return va < vb ? -1 : 1;
    } else {
      const std::string_view sa(reinterpret_cast<const char*>(pa),
                                bytecode::string_field_length(pa));
      const std::string_view sb(reinterpret_cast<const char*>(pb),
                                bytecode::string_field_length(pb));
      if (const int c = sa.compare(sb); c != 0) return c;
    }
    offset += size;
  }
  return a.compare(b);
}

} // namespace

std::string format_key(std::span<const FieldKind> kinds, std::string_view packed) {
  std::string out;
  size_t offset = 0;
  for (size_t i = 0; i < kinds.size(); ++i) {
    const FieldKind kind = kinds[i];
    if (i > 0) out += ", ";
    const uint32_t size = bytecode::field_size(kind);
    if (offset + size > packed.size()) break;
    const auto* field = reinterpret_cast<const uint8_t*>(packed.data()) + offset;
    if (kind == FieldKind::Int) {
      out += fmt::format("{}", static_cast<int64_t>(bytecode::load_u64_le(field)));
    } else {
      out.append(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
    }
    offset += size;
  }
  return out;
}

std::string format_value(const bytecode::MapSchema& schema, uint64_t value) {
  if (schema.value == bytecode::MapValueKind::Int && schema.value_signed) {
    return fmt::format("{}", static_cast<int64_t>(value));
  }
  return fmt::format("{}", value);
}

void sort_entries(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries) {
  const bool is_signed = schema.value == bytecode::MapValueKind::Int && schema.value_signed;
  std::sort(entries.begin(), entries.end(), [&](const MapEntry& a, const MapEntry& b) {
    if (a.value != b.value) {
      return is_signed ? static_cast<int64_t>(a.value) < static_cast<int64_t>(b.value)
                       : a.value < b.value;
    }
    return compare_keys(schema.key, a.key, b.key) < 0;
  });
}

std::string format_map(const bytecode::MapSchema& schema, std::vector<MapEntry> entries) {
  if (schema.is_scalar()) {
    if (entries.empty() && schema.value == bytecode::MapValueKind::Count) {
      entries.push_back(MapEntry{});
    }
    if (entries.empty()) return "\n";
    return fmt::format("{}: {}\n", schema.name, format_value(schema, entries.front().value));
  }
  if (entries.empty()) return "\n";
  sort_entries(schema, entries);
  std::string out;
  for (const MapEntry& entry : entries) {
    out += fmt::format("{}[{}]: {}\n", schema.name, format_key(schema.key, entry.key),
                       format_value(schema, entry.value));
  }
  return out;
}

std::string format_string_map(const bytecode::MapSchema& schema,
                              std::vector<std::pair<std::string, std::string>> entries) {
  if (entries.empty()) return "\n";
  if (schema.is_scalar()) return fmt::format("{}: {}\n", schema.name, entries.front().second);
  std::sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
    return compare_keys(schema.key, a.first, b.first) < 0;
  });
  std::string out;
  for (const auto& [key, value] : entries)
    out += fmt::format("{}[{}]: {}\n", schema.name, format_key(schema.key, key), value);
  return out;
}

} // namespace dprobe::output
