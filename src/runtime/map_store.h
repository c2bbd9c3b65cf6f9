// Controller-side map storage: one hash table per map, keyed by packed key bytes, with the
// fixed capacity a BPF map (and the agent's shared-memory tables) would have. Values are one or
// more 64-bit words laid out as bytecode/aggregate.h says.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bytecode/isa.h"
#include "bytecode/module.h"
#include "output/map_printer.h"

namespace dprobe::runtime {

class MapStore {
 public:
  explicit MapStore(const std::vector<bytecode::MapSchema>& schemas);

  /// Word 0 of the value; false when the map or key is unknown (a wrong key size is an unknown
  /// key).
  bool lookup(uint32_t map, std::string_view key, uint64_t* value) const;
  /// False when the update was dropped: map full, bad map id, key of the wrong size, an op that
  /// does not fit the value (bucket out of range). An update that changes nothing by bpftrace's
  /// rules (max() of a negative value) creates no entry and succeeds.
  bool update(uint32_t map, std::string_view key, bytecode::UpdateOp op, uint64_t value);
  /// Folds a whole value produced elsewhere (an agent table) into the entry for `key`, by the
  /// map's merge rule (bytecode::merge_value); creates the entry. `words` must be the map's
  /// value size. False when dropped.
  bool merge(uint32_t map, std::string_view key, std::span<const uint64_t> words);
  void remove(uint32_t map, std::string_view key);
  /// clear(@m): every entry goes.
  void clear(uint32_t map);
  /// zero(@m): every entry stays, with all its words 0.
  void zero(uint32_t map);

  [[nodiscard]] size_t size(uint32_t map) const;
  /// A copy of a map's entries, unordered.
  [[nodiscard]] std::vector<output::MapEntry> entries(uint32_t map) const;
  /// Updates dropped because a map was full.
  [[nodiscard]] uint64_t dropped_updates() const { return dropped_; }

 private:
  struct Table {
    uint32_t key_size = 0;
    uint32_t capacity = 0;
    uint32_t words = 1;
    bytecode::MapValueKind kind = bytecode::MapValueKind::Int;
    std::unordered_map<std::string, std::vector<uint64_t>> entries;
  };
  [[nodiscard]] const Table* table(uint32_t map, std::string_view key) const;
  /// The entry for key, created (zeroed) when absent and there is room; null when full.
  std::vector<uint64_t>* entry(Table& t, std::string_view key);

  std::vector<Table> tables_;
  uint64_t dropped_ = 0;
};

} // namespace dprobe::runtime
