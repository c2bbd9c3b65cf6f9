// bpftrace's end-of-run text for maps, reproduced byte for byte (bpftrace 0.17):
//   @name: 5                  a map without keys
//   @name[1, abc]: 5          one line per entry, keys joined by ", " (ints as int64, strings raw)
//   <empty line>              a map that holds nothing
// Count and integer maps are sorted by value, ascending (signed or unsigned per the map's value
// type). bpftrace leaves the order of equal values to the kernel's hash table walk, which is
// random per run; dprobe breaks ties by key, ascending (ints as int64, strings bytewise, tuple
// elements left to right), so its output is deterministic and one of the orders bpftrace prints.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/module.h"

namespace dprobe::output {

struct MapEntry {
  std::string key; ///< packed key bytes (bytecode/packed.h), empty for a map without keys
  uint64_t value = 0;
};

/// "1, abc" for a packed key of the given kinds (without the brackets).
[[nodiscard]] std::string format_key(std::span<const bytecode::FieldKind> kinds,
                                     std::string_view packed);

/// The value as bpftrace prints it for this map's value type.
[[nodiscard]] std::string format_value(const bytecode::MapSchema& schema, uint64_t value);

/// Orders entries the way format_map prints them.
void sort_entries(const bytecode::MapSchema& schema, std::vector<MapEntry>& entries);

/// One map's text, ending with a newline. A count map without keys always has a value
/// ("@name: 0" when never hit: bpftrace keeps such maps in a per-CPU array).
[[nodiscard]] std::string format_map(const bytecode::MapSchema& schema,
                                     std::vector<MapEntry> entries);

/// A string-valued map's text (entries: packed key -> value): sorted by key, as bpftrace sorts
/// maps whose values are not integers; a map that holds nothing is an empty line.
[[nodiscard]] std::string
format_string_map(const bytecode::MapSchema& schema,
                  std::vector<std::pair<std::string, std::string>> entries);

} // namespace dprobe::output
