// bpftrace's end-of-run (and print()) text for maps, reproduced byte for byte (bpftrace 0.17):
//   @name: 5                  a map without keys
//   @name[1, abc]: 5          one line per entry, keys joined by ", " (ints as int64, strings raw)
//   <empty line>              a count, sum, min, max or integer map that holds nothing
// Count, sum, min, max and integer maps are sorted by value, ascending (signed or unsigned per
// the map's value type); avg and stats maps by average, each entry one line
// ("@s: count 3, average 2, total 7"), the map followed by an empty line; hist and lhist maps by
// the sum of their buckets, each entry "@h[key]: " then its bucket lines then an empty line.
// An empty hist map prints one empty line, an empty avg or stats map two.
// bpftrace leaves the order of equal values to the kernel's hash table walk, which is random
// per run; dprobe breaks ties by key, ascending (ints as int64, strings bytewise, tuple elements
// left to right), so its output is deterministic and one of the orders bpftrace prints.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/module.h"
#include "output/stack_formatter.h"

namespace dprobe::output {

struct MapEntry {
  MapEntry() = default;
  MapEntry(std::string k, uint64_t v, std::vector<uint64_t> more = {})
      : key(std::move(k)), value(v), rest(std::move(more)) {}

  std::string key;            ///< packed key bytes (bytecode/packed.h), empty for a map without keys
  uint64_t value = 0;         ///< word 0 of the value (bytecode/aggregate.h)
  std::vector<uint64_t> rest; ///< words 1.. of a multi-word value (avg, stats, hist, lhist)

  /// Word i of the value, 0 past its end.
  [[nodiscard]] uint64_t word(size_t i) const {
    if (i == 0) return value;
    return i - 1 < rest.size() ? rest[i - 1] : 0;
  }
};

/// "1, abc" for a packed key of the given kinds (without the brackets). Stack fields print as
/// `stacks` names them (bpftrace's indent of 4 inside a key), as "\n" without it.
[[nodiscard]] std::string format_key(std::span<const bytecode::FieldKind> kinds,
                                     std::string_view packed, StackFormatter* stacks = nullptr);

/// A one-word value (count, sum, min, max, integer) as bpftrace prints it for this map's type;
/// for min maps `value` is the stored word (0xffffffff - the minimum).
/// A stack value prints as `stacks` names it (indent 8).
[[nodiscard]] std::string format_value(const bytecode::MapSchema& schema, uint64_t value,
                                       StackFormatter* stacks = nullptr);

/// The bucket lines of a hist (kHistBuckets counts) or lhist value, each ending with a newline;
/// empty when every bucket is 0.
/// `div` (print(@h, top, div)): counts shown divided by it, bars still drawn from the counts,
/// as bpftrace 0.17 draws them.
[[nodiscard]] std::string format_hist(std::span<const uint64_t> buckets, uint32_t div = 0);
[[nodiscard]] std::string format_lhist(std::span<const uint64_t> buckets, int64_t min, int64_t max,
                                       int64_t step);

/// avg()'s value as bpftrace 0.17 computes it from word 0 (count) and word 1 (signed total):
/// the total over the count, truncated; 0 for no values.
[[nodiscard]] int64_t map_average(const MapEntry& entry);

/// The buckets bpftrace shows of a hist or lhist value, [first, last]; first > last when every
/// bucket is 0. hist: from the first to the last non-zero bucket; lhist: the same, within the
/// buckets its parameters define.
struct BucketRange {
  int first = 0;
  int last = -1;
};
[[nodiscard]] BucketRange hist_range(std::span<const uint64_t> buckets);
[[nodiscard]] BucketRange lhist_range(std::span<const uint64_t> buckets, int64_t min, int64_t max,
                                      int64_t step);

/// Orders entries the way format_map prints them.
void sort_entries(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries);

/// One map's text, ending with a newline. A count map without keys always has a value
/// ("@name: 0" when never hit: bpftrace keeps such maps in a per-CPU array).
/// With `limits` (print(@m, top, div)): only the `top` entries printed last (the largest), values
/// divided by `div`, as bpftrace 0.17 does it: avg divides the average, hist the counts shown,
/// lhist ignores div, stats ignores both.
[[nodiscard]] std::string format_map(const bytecode::MapSchema& schema,
                                     std::vector<MapEntry> entries,
                                     StackFormatter* stacks = nullptr,
                                     bytecode::PrintLimits limits = {});

/// Sorts `entries` as format_map prints them, keeps the last `limits.top` (0: all) and divides
/// one-word values and averages by `limits.div` (hist counts are left to the printer).
void apply_print_limits(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries,
                        bytecode::PrintLimits limits);

/// Orders a string-valued map's entries (packed key -> value) by key, as format_string_map does.
void sort_string_entries(const bytecode::MapSchema& schema,
                         std::vector<std::pair<std::string, std::string>>& entries);

/// A string-valued map's text (entries: packed key -> value): sorted by key, as bpftrace sorts
/// maps whose values are not integers; a map that holds nothing is an empty line.
[[nodiscard]] std::string
format_string_map(const bytecode::MapSchema& schema,
                  std::vector<std::pair<std::string, std::string>> entries,
                  StackFormatter* stacks = nullptr);

} // namespace dprobe::output
