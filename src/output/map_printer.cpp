#include "output/map_printer.h"

#include <algorithm>
#include <cstdint>

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
    if (kind != FieldKind::String) {
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

std::string format_key(std::span<const FieldKind> kinds, std::string_view packed,
                       StackFormatter* stacks) {
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
    } else if (bytecode::is_stack_field(kind)) {
      out += stack_text_or_empty(stacks, bytecode::load_u64_le(field), kind, 4);
    } else {
      out.append(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
    }
    offset += size;
  }
  return out;
}

namespace {

using bytecode::MapValueKind;

constexpr int kBarWidth = 52;

bool is_stats_kind(MapValueKind kind) {
  return kind == MapValueKind::Avg || kind == MapValueKind::Stats;
}

bool is_hist_kind(MapValueKind kind) {
  return kind == MapValueKind::Hist || kind == MapValueKind::Lhist;
}

/// The number a one-word entry prints (and sorts by), as int64 when signed_value says so.
int64_t display_value(const bytecode::MapSchema& schema, uint64_t word) {
  // bpftrace 0.17 shows a stored 0 (a zeroed min map) as 0, not as 0xffffffff.
  if (schema.value == MapValueKind::Min && word != 0) {
    return static_cast<int64_t>(bytecode::kMinInverseBase - word);
  }
  return static_cast<int64_t>(word);
}

bool signed_display(const bytecode::MapSchema& schema) {
  switch (schema.value) {
  case MapValueKind::Count:
    return false;
  case MapValueKind::Min:
  case MapValueKind::Max:
    return true;
  default:
    return schema.value_signed;
  }
}

int64_t average(const MapEntry& e) {
  return map_average(e);
}

uint64_t bucket_total(const MapEntry& e, uint32_t words) {
  uint64_t sum = 0;
  for (uint32_t i = 0; i < words; ++i)
    sum += e.word(i);
  return sum;
}

std::vector<uint64_t> value_words(const MapEntry& e, uint32_t words) {
  std::vector<uint64_t> out(words);
  for (uint32_t i = 0; i < words; ++i)
    out[i] = e.word(i);
  return out;
}

/// One bucket line: the label left in 16 columns, the count right in 8 (divided by `div` when
/// not 0: the bar is still the count's), then the bar, scaled with bpftrace's float arithmetic
/// so that rounding matches.
std::string bucket_line(const std::string& label, uint64_t count, int max_value,
                        uint32_t div = 0) {
  const int bar = static_cast<int>(static_cast<float>(count) / static_cast<float>(max_value) *
                                   static_cast<float>(kBarWidth));
  return fmt::format("{:<16}{:>8} |{:<52}|\n", label, div != 0 ? count / div : count,
                     std::string(std::max(bar, 0), '@'));
}

/// bpftrace's hist_index_label: 2^power with a K/M/G/T suffix.
std::string hist_label(int power) {
  const char* suffix = "";
  if (power >= 40) {
    suffix = "T";
    power -= 40;
  } else if (power >= 30) {
    suffix = "G";
    power -= 30;
  } else if (power >= 20) {
    suffix = "M";
    power -= 20;
  } else if (power >= 10) {
    suffix = "K";
    power -= 10;
  }
  return fmt::format("{}{}", 1 << power, suffix);
}

/// bpftrace's lhist_index_label (an int there too).
std::string lhist_label(int number) {
  constexpr int kKilo = 1024;
  constexpr int kMega = 1048576;
  if (number == 0) return "0";
  if (number % kMega == 0) return fmt::format("{}M", number / kMega);
  if (number % kKilo == 0) return fmt::format("{}K", number / kKilo);
  return fmt::format("{}", number);
}

std::string entry_name(const bytecode::MapSchema& schema, const MapEntry& e,
                       StackFormatter* stacks) {
  if (schema.is_scalar()) return schema.name;
  return fmt::format("{}[{}]", schema.name, format_key(schema.key, e.key, stacks));
}

} // namespace

int64_t map_average(const MapEntry& e) {
  const auto count = static_cast<int64_t>(e.word(0));
  const auto total = static_cast<int64_t>(e.word(1));
  if (count == 0) return 0;
  if (total == INT64_MIN && count == -1) return total;
  return total / count;
}

namespace {

/// The largest bucket, as bpftrace's int (it scales the bars by it).
int max_bucket(std::span<const uint64_t> buckets) {
  int max_value = 0;
  for (uint64_t b : buckets)
    max_value = std::max(max_value, static_cast<int>(b));
  return max_value;
}

} // namespace

BucketRange hist_range(std::span<const uint64_t> buckets) {
  BucketRange range{-1, -1};
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (static_cast<int>(buckets[i]) > 0) {
      if (range.first == -1) range.first = static_cast<int>(i);
      range.last = static_cast<int>(i);
    }
  }
  if (range.last == -1) return BucketRange{};
  return range;
}

BucketRange lhist_range(std::span<const uint64_t> buckets, int64_t min, int64_t max,
                        int64_t step) {
  const auto width = static_cast<int>(step);
  if (width <= 0) return BucketRange{};
  const int inside = (static_cast<int>(max) - static_cast<int>(min)) / width;
  int max_index = -1;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (static_cast<int>(buckets[i]) != 0) max_index = static_cast<int>(i);
  }
  if (max_index == -1) return BucketRange{};
  int start = -1;
  int end = 0;
  for (int i = 0; i <= inside + 1 && static_cast<size_t>(i) < buckets.size(); ++i) {
    if (buckets[static_cast<size_t>(i)] > 0) {
      if (start == -1) start = i;
      end = i;
    }
  }
  if (start == -1) start = 0;
  return BucketRange{start, end};
}

std::string format_hist(std::span<const uint64_t> buckets, uint32_t div) {
  const BucketRange range = hist_range(buckets);
  if (range.first > range.last) return "";
  const int max_value = max_bucket(buckets);
  std::string out;
  for (int i = range.first; i <= range.last; ++i) {
    std::string label;
    if (i == 0) {
      label = "(..., 0)";
    } else if (i == 1) {
      label = "[0]";
    } else if (i == 2) {
      label = "[1]";
    } else {
      label = fmt::format("[{}, {})", hist_label(i - 2), hist_label(i - 1));
    }
    out += bucket_line(label, buckets[static_cast<size_t>(i)], max_value, div);
  }
  return out;
}

std::string format_lhist(std::span<const uint64_t> buckets, int64_t min, int64_t max,
                         int64_t step) {
  const auto lo = static_cast<int>(min);
  const auto hi = static_cast<int>(max);
  const auto width = static_cast<int>(step);
  if (width <= 0) return "";
  const int inside = (hi - lo) / width;
  const BucketRange range = lhist_range(buckets, min, max, step);
  if (range.first > range.last) return "";
  const int max_value = max_bucket(buckets);
  std::string out;
  for (int i = range.first; i <= range.last; ++i) {
    std::string label;
    if (i == 0) {
      label = fmt::format("(..., {})", lhist_label(lo));
    } else if (i == inside + 1) {
      label = fmt::format("[{}, ...)", lhist_label(hi));
    } else {
      label = fmt::format("[{}, {})", lhist_label((i - 1) * width + lo),
                          lhist_label(i * width + lo));
    }
    out += bucket_line(label, buckets[static_cast<size_t>(i)], max_value);
  }
  return out;
}

std::string format_value(const bytecode::MapSchema& schema, uint64_t value,
                         StackFormatter* stacks) {
  if (bytecode::is_stack_field(schema.value_field)) {
    return stack_text_or_empty(stacks, value, schema.value_field, 8);
  }
  const int64_t shown = display_value(schema, value);
  if (signed_display(schema)) return fmt::format("{}", shown);
  return fmt::format("{}", static_cast<uint64_t>(shown));
}

void sort_entries(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries) {
  const uint32_t words = schema.value_words();
  const auto by_key = [&](const MapEntry& a, const MapEntry& b) {
    return compare_keys(schema.key, a.key, b.key) < 0;
  };
  if (is_hist_kind(schema.value)) {
    std::sort(entries.begin(), entries.end(), [&](const MapEntry& a, const MapEntry& b) {
      const uint64_t ta = bucket_total(a, words);
      const uint64_t tb = bucket_total(b, words);
      return ta != tb ? ta < tb : by_key(a, b);
    });
    return;
  }
  if (is_stats_kind(schema.value)) {
    std::sort(entries.begin(), entries.end(), [&](const MapEntry& a, const MapEntry& b) {
      const int64_t va = average(a);
      const int64_t vb = average(b);
      return va != vb ? va < vb : by_key(a, b);
    });
    return;
  }
  const bool is_signed = signed_display(schema);
  std::sort(entries.begin(), entries.end(), [&](const MapEntry& a, const MapEntry& b) {
    const int64_t va = display_value(schema, a.value);
    const int64_t vb = display_value(schema, b.value);
    if (va != vb) {
      return is_signed ? va < vb : static_cast<uint64_t>(va) < static_cast<uint64_t>(vb);
    }
    return by_key(a, b);
  });
}

void apply_print_limits(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries,
                        bytecode::PrintLimits limits) {
  if (schema.value == MapValueKind::Stats) return;
  if (!schema.is_scalar()) {
    sort_entries(schema, entries);
    if (limits.top != 0 && entries.size() > limits.top) {
      entries.erase(entries.begin(), entries.end() - limits.top);
    }
  }
  if (limits.div == 0 || is_hist_kind(schema.value)) return;
  const auto div = static_cast<int64_t>(limits.div);
  for (MapEntry& e : entries) {
    if (schema.value == MapValueKind::Avg) {
      // trunc(trunc(total / div) / count) == trunc(total / count / div): the average divided.
      if (e.rest.empty()) e.rest.push_back(0);
      e.rest[0] = static_cast<uint64_t>(static_cast<int64_t>(e.rest[0]) / div);
    } else if (schema.value == MapValueKind::Min) {
      if (e.value == 0) continue;
      const int64_t shown = display_value(schema, e.value) / div;
      e.value = bytecode::kMinInverseBase - static_cast<uint64_t>(shown);
    } else if (signed_display(schema)) {
      e.value = static_cast<uint64_t>(static_cast<int64_t>(e.value) / div);
    } else {
      e.value /= limits.div;
    }
  }
}

std::string format_map(const bytecode::MapSchema& schema, std::vector<MapEntry> entries,
                       StackFormatter* stacks, bytecode::PrintLimits limits) {
  apply_print_limits(schema, entries, limits);
  const uint32_t hist_div = schema.value == MapValueKind::Hist ? limits.div : 0;
  if (is_hist_kind(schema.value)) {
    if (entries.empty()) return "\n";
    sort_entries(schema, entries);
    const uint32_t words = schema.value_words();
    std::string out;
    for (const MapEntry& entry : entries) {
      const std::vector<uint64_t> buckets = value_words(entry, words);
      out += entry_name(schema, entry, stacks) + ": \n";
      out += schema.value == MapValueKind::Hist
                 ? format_hist(buckets, hist_div)
                 : format_lhist(buckets, schema.lhist_min, schema.lhist_max, schema.lhist_step);
      out += "\n";
    }
    return out;
  }
  if (is_stats_kind(schema.value)) {
    if (entries.empty()) return "\n\n";
    sort_entries(schema, entries);
    std::string out;
    for (const MapEntry& entry : entries) {
      if (schema.value == MapValueKind::Avg) {
        out += fmt::format("{}: {}\n", entry_name(schema, entry, stacks), average(entry));
      } else {
        out += fmt::format("{}: count {}, average {}, total {}\n", entry_name(schema, entry, stacks),
                           static_cast<int64_t>(entry.word(0)), average(entry),
                           static_cast<int64_t>(entry.word(1)));
      }
    }
    return out + "\n";
  }
  if (schema.is_scalar()) {
    if (entries.empty() && schema.value == MapValueKind::Count) {
      entries.push_back(MapEntry{});
    }
    if (entries.empty()) return "\n";
    return fmt::format("{}: {}\n", schema.name,
                       format_value(schema, entries.front().value, stacks));
  }
  if (entries.empty()) return "\n";
  sort_entries(schema, entries);
  std::string out;
  for (const MapEntry& entry : entries) {
    out += fmt::format("{}[{}]: {}\n", schema.name, format_key(schema.key, entry.key, stacks),
                       format_value(schema, entry.value, stacks));
  }
  return out;
}

void sort_string_entries(const bytecode::MapSchema& schema,
                         std::vector<std::pair<std::string, std::string>>& entries) {
  std::sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
    return compare_keys(schema.key, a.first, b.first) < 0;
  });
}

std::string format_string_map(const bytecode::MapSchema& schema,
                              std::vector<std::pair<std::string, std::string>> entries,
                              StackFormatter* stacks) {
  if (entries.empty()) return "\n";
  if (schema.is_scalar()) return fmt::format("{}: {}\n", schema.name, entries.front().second);
  sort_string_entries(schema, entries);
  std::string out;
  for (const auto& [key, value] : entries)
    out += fmt::format("{}[{}]: {}\n", schema.name, format_key(schema.key, key, stacks), value);
  return out;
}

} // namespace dprobe::output
