// Controller-side map storage: one hash table per map, keyed by packed key bytes, with the
// fixed capacity a BPF map (and later the agent's shared-memory tables) would have.
#pragma once

#include <cstdint>
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

  /// False when the map or key is unknown (a wrong key size is an unknown key).
  bool lookup(uint32_t map, std::string_view key, uint64_t* value) const;
  /// False when the update was dropped: map full, bad map id, key of the wrong size, bad op.
  bool update(uint32_t map, std::string_view key, bytecode::UpdateOp op, uint64_t value);
  void remove(uint32_t map, std::string_view key);

  [[nodiscard]] size_t size(uint32_t map) const;
  /// A copy of a map's entries, unordered.
  [[nodiscard]] std::vector<output::MapEntry> entries(uint32_t map) const;
  /// Updates dropped because a map was full.
  [[nodiscard]] uint64_t dropped_updates() const { return dropped_; }

 private:
  struct Table {
    uint32_t key_size = 0;
    uint32_t capacity = 0;
    std::unordered_map<std::string, uint64_t> entries;
  };
  [[nodiscard]] const Table* table(uint32_t map, std::string_view key) const;

  std::vector<Table> tables_;
  uint64_t dropped_ = 0;
};

} // namespace dprobe::runtime
