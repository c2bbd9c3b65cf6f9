#include "output/json_printer.h"

#include <fmt/format.h>

namespace dprobe::output {

namespace {

using bytecode::FieldKind;

// --- values, one function per kind ------------------------------------------------------------

std::string count_value_json(const bytecode::MapSchema&, const MapEntry& entry) {
  return fmt::format("{}", entry.value);
}

std::string int_value_json(const bytecode::MapSchema& schema, const MapEntry& entry) {
  return schema.value_signed ? fmt::format("{}", static_cast<int64_t>(entry.value))
                             : fmt::format("{}", entry.value);
}

/// "1,x" for a packed tuple key: bpftrace joins the fields with a bare comma in JSON.
std::string json_key(const bytecode::MapSchema& schema, std::string_view packed) {
  std::string out;
  size_t offset = 0;
  for (size_t i = 0; i < schema.key.size(); ++i) {
    const FieldKind kind = schema.key[i];
    const uint32_t size = bytecode::field_size(kind);
    if (offset + size > packed.size()) break;
    if (i > 0) out += ',';
    const auto* field = reinterpret_cast<const uint8_t*>(packed.data()) + offset;
    if (kind == FieldKind::Int) {
      out += fmt::format("{}", static_cast<int64_t>(bytecode::load_u64_le(field)));
    } else {
      out += json_escape(std::string_view(reinterpret_cast<const char*>(field),
                                          bytecode::string_field_length(field)));
    }
    offset += size;
  }
  return out;
}

} // namespace

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      } else {
        out += c;
      }
    }
  }
  return out;
}

std::string json_attached_probes(size_t probes) {
  return fmt::format("{{\"type\": \"attached_probes\", \"data\": {{\"probes\": {}}}}}\n", probes);
}

std::string json_printf(std::string_view text) {
  return fmt::format("{{\"type\": \"printf\", \"data\": \"{}\"}}\n", json_escape(text));
}

std::string json_value(const bytecode::MapSchema& schema, const MapEntry& entry) {
  switch (schema.value) {
  case bytecode::MapValueKind::Count:
    return count_value_json(schema, entry);
  case bytecode::MapValueKind::Int:
    return int_value_json(schema, entry);
  default: // aggregations: not in JSON yet
    break;
  }
  return "null";
}

std::string format_map_json(const bytecode::MapSchema& schema, std::vector<MapEntry> entries) {
  const std::string name = json_escape(schema.name);
  if (schema.is_scalar()) {
    if (entries.empty() && schema.value == bytecode::MapValueKind::Count) {
      entries.push_back(MapEntry{});
    }
    if (entries.empty()) return "";
    return fmt::format("{{\"type\": \"map\", \"data\": {{\"{}\": {}}}}}\n", name,
                       json_value(schema, entries.front()));
  }
  if (entries.empty()) return "";
  sort_entries(schema, entries);
  std::string body;
  for (const MapEntry& entry : entries) {
    if (!body.empty()) body += ", ";
    body += fmt::format("\"{}\": {}", json_key(schema, entry.key), json_value(schema, entry));
  }
  return fmt::format("{{\"type\": \"map\", \"data\": {{\"{}\": {{{}}}}}}}\n", name, body);
}

} // namespace dprobe::output
