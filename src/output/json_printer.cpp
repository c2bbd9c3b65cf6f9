#include "output/json_printer.h"

#include <fmt/format.h>

namespace dprobe::output {

namespace {

using bytecode::FieldKind;

// --- values, one function per kind ------------------------------------------------------------

/// count, sum, min, max and integer maps: the number the text output shows.
std::string number_value_json(const bytecode::MapSchema& schema, const MapEntry& entry) {
  return format_value(schema, entry.value);
}

/// avg(): bpftrace prints the average alone, as a plain number.
std::string avg_value_json(const bytecode::MapSchema&, const MapEntry& entry) {
  return fmt::format("{}", map_average(entry));
}

/// stats(): {"count": C, "average": A, "total": T}.
std::string stats_value_json(const bytecode::MapSchema&, const MapEntry& entry) {
  return fmt::format("{{\"count\": {}, \"average\": {}, \"total\": {}}}",
                     static_cast<int64_t>(entry.word(0)), map_average(entry),
                     static_cast<int64_t>(entry.word(1)));
}

std::vector<uint64_t> value_words(const bytecode::MapSchema& schema, const MapEntry& entry) {
  std::vector<uint64_t> words(schema.value_words());
  for (size_t i = 0; i < words.size(); ++i)
    words[i] = entry.word(i);
  return words;
}

std::string bucket_json(std::string_view bounds, uint64_t count) {
  return fmt::format("{{{}\"count\": {}}}", bounds, count);
}

/// hist(): the shown buckets (hist_range) as {"min", "max", "count"} objects; the negative
/// bucket has no "min". Bounds are computed in 32-bit ints as bpftrace 0.17 does, so the
/// [2^31, 2^32) bucket shows as {"min": -2147483648, "max": 0}.
/// `div` (print(@h, top, div)): counts shown divided, buckets chosen by the counts themselves.
std::string hist_value_json(const bytecode::MapSchema& schema, const MapEntry& entry,
                            uint32_t div = 0) {
  const std::vector<uint64_t> buckets = value_words(schema, entry);
  const BucketRange range = hist_range(buckets);
  std::string out = "[";
  for (int i = range.first; i <= range.last; ++i) {
    if (i > range.first) out += ", ";
    std::string bounds;
    if (i == 0) {
      bounds = "\"max\": -1, ";
    } else if (i == 1) {
      bounds = "\"min\": 0, \"max\": 0, ";
    } else if (i == 2) {
      bounds = "\"min\": 1, \"max\": 1, ";
    } else {
      const auto low = static_cast<int32_t>(1u << ((i - 2) & 31));
      const auto high = static_cast<int32_t>((1u << ((i - 1) & 31)) - 1u);
      bounds = fmt::format("\"min\": {}, \"max\": {}, ", low, high);
    }
    const uint64_t count = buckets[static_cast<size_t>(i)];
    out += bucket_json(bounds, div != 0 ? count / div : count);
  }
  return out + "]";
}

/// lhist(): like hist; the bucket below min has only "max" (min - 1), the one at max and above
/// only "min" (max).
std::string lhist_value_json(const bytecode::MapSchema& schema, const MapEntry& entry) {
  const std::vector<uint64_t> buckets = value_words(schema, entry);
  const BucketRange range =
      lhist_range(buckets, schema.lhist_min, schema.lhist_max, schema.lhist_step);
  const auto min = static_cast<int32_t>(schema.lhist_min);
  const auto max = static_cast<int32_t>(schema.lhist_max);
  const auto step = static_cast<int32_t>(schema.lhist_step);
  const int inside = step > 0 ? (max - min) / step : 0;
  std::string out = "[";
  for (int i = range.first; i <= range.last; ++i) {
    if (i > range.first) out += ", ";
    std::string bounds;
    if (i == 0) {
      bounds = fmt::format("\"max\": {}, ", min - 1);
    } else if (i == inside + 1) {
      bounds = fmt::format("\"min\": {}, ", max);
    } else {
      bounds = fmt::format("\"min\": {}, \"max\": {}, ", (i - 1) * step + min,
                           i * step + min - 1);
    }
    out += bucket_json(bounds, buckets[static_cast<size_t>(i)]);
  }
  return out + "]";
}

/// The "type" of a map's JSON line, per value kind.
std::string_view map_event_type(bytecode::MapValueKind kind) {
  switch (kind) {
  case bytecode::MapValueKind::Avg:
  case bytecode::MapValueKind::Stats:
    return "stats";
  case bytecode::MapValueKind::Hist:
  case bytecode::MapValueKind::Lhist:
    return "hist";
  default:
    return "map";
  }
}

/// One map's line around its body: keyless maps hold the value itself, keyed ones an object.
std::string map_line(const bytecode::MapSchema& schema, std::string_view body) {
  const std::string name = json_escape(schema.name);
  if (schema.is_scalar()) {
    return fmt::format("{{\"type\": \"{}\", \"data\": {{\"{}\": {}}}}}\n",
                       map_event_type(schema.value), name, body);
  }
  return fmt::format("{{\"type\": \"{}\", \"data\": {{\"{}\": {{{}}}}}}}\n",
                     map_event_type(schema.value), name, body);
}

/// "1,x" for a packed tuple key: bpftrace joins the fields with a bare comma in JSON.
std::string json_key(const bytecode::MapSchema& schema, std::string_view packed,
                     StackFormatter* stacks) {
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
    } else if (bytecode::is_stack_field(kind)) {
      out += json_escape(stack_text_or_empty(stacks, bytecode::load_u64_le(field), kind, 4));
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

std::string json_event(std::string_view type, std::string_view text) {
  return fmt::format("{{\"type\": \"{}\", \"data\": \"{}\"}}\n", type, json_escape(text));
}

std::string json_printf(std::string_view text) {
  return json_event("printf", text);
}

std::string json_print_value(std::string_view text, bool quoted) {
  if (quoted) return fmt::format("{{\"type\": \"value\", \"data\": \"{}\"}}\n", json_escape(text));
  return fmt::format("{{\"type\": \"value\", \"data\": {}}}\n", text);
}

std::string json_value(const bytecode::MapSchema& schema, const MapEntry& entry,
                       StackFormatter* stacks, uint32_t hist_div) {
  if (bytecode::is_stack_field(schema.value_field)) {
    return fmt::format("\"{}\"", json_escape(format_value(schema, entry.value, stacks)));
  }
  switch (schema.value) {
  case bytecode::MapValueKind::Count:
  case bytecode::MapValueKind::Int:
  case bytecode::MapValueKind::Sum:
  case bytecode::MapValueKind::Min:
  case bytecode::MapValueKind::Max:
    return number_value_json(schema, entry);
  case bytecode::MapValueKind::Avg:
    return avg_value_json(schema, entry);
  case bytecode::MapValueKind::Stats:
    return stats_value_json(schema, entry);
  case bytecode::MapValueKind::Hist:
    return hist_value_json(schema, entry, hist_div);
  case bytecode::MapValueKind::Lhist:
    return lhist_value_json(schema, entry);
  case bytecode::MapValueKind::String: // format_string_map_json: the values are not words
  case bytecode::MapValueKind::kCount:
    break;
  }
  return "null";
}

std::string format_map_json(const bytecode::MapSchema& schema, std::vector<MapEntry> entries,
                            StackFormatter* stacks, bytecode::PrintLimits limits) {
  apply_print_limits(schema, entries, limits);
  const uint32_t hist_div = schema.value == bytecode::MapValueKind::Hist ? limits.div : 0;
  if (schema.is_scalar()) {
    if (entries.empty() && schema.value == bytecode::MapValueKind::Count) {
      entries.push_back(MapEntry{});
    }
    if (entries.empty()) return "";
    return map_line(schema, json_value(schema, entries.front(), stacks, hist_div));
  }
  if (entries.empty()) return "";
  sort_entries(schema, entries);
  std::string body;
  for (const MapEntry& entry : entries) {
    if (!body.empty()) body += ", ";
    body += fmt::format("\"{}\": {}", json_key(schema, entry.key, stacks),
                        json_value(schema, entry, stacks, hist_div));
  }
  return map_line(schema, body);
}

std::string format_string_map_json(const bytecode::MapSchema& schema,
                                   std::vector<std::pair<std::string, std::string>> entries,
                                   StackFormatter* stacks) {
  if (entries.empty()) return "";
  if (schema.is_scalar()) {
    return map_line(schema, fmt::format("\"{}\"", json_escape(entries.front().second)));
  }
  sort_string_entries(schema, entries);
  std::string body;
  for (const auto& [key, value] : entries) {
    if (!body.empty()) body += ", ";
    body += fmt::format("\"{}\": \"{}\"", json_key(schema, key, stacks), json_escape(value));
  }
  return map_line(schema, body);
}

} // namespace dprobe::output
