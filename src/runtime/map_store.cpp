#include "runtime/map_store.h"

namespace dprobe::runtime {

MapStore::MapStore(const std::vector<bytecode::MapSchema>& schemas) {
  tables_.reserve(schemas.size());
  for (const bytecode::MapSchema& schema : schemas) {
    Table t;
    t.key_size = schema.key_size();
    t.capacity = schema.max_entries;
    tables_.push_back(std::move(t));
  }
}

const MapStore::Table* MapStore::table(uint32_t map, std::string_view key) const {
  if (map >= tables_.size() || key.size() != tables_[map].key_size) return nullptr;
  return &tables_[map];
}

bool MapStore::lookup(uint32_t map, std::string_view key, uint64_t* value) const {
  const Table* t = table(map, key);
  if (t == nullptr) return false;
  const auto it = t->entries.find(std::string(key));
  if (it == t->entries.end()) return false;
  *value = it->second;
  return true;
}

bool MapStore::update(uint32_t map, std::string_view key, bytecode::UpdateOp op, uint64_t value) {
  if (table(map, key) == nullptr) return false;
  Table& t = tables_[map];
  auto it = t.entries.find(std::string(key));
  if (it == t.entries.end()) {
    if (t.entries.size() >= t.capacity) {
      ++dropped_;
      return false;
    }
    it = t.entries.emplace(std::string(key), 0).first;
  }
  switch (op) {
  case bytecode::UpdateOp::Set:
    it->second = value;
    return true;
  case bytecode::UpdateOp::Add:
    it->second += value;
    return true;
  case bytecode::UpdateOp::kCount:
    break;
  }
  return false;
}

void MapStore::remove(uint32_t map, std::string_view key) {
  if (table(map, key) == nullptr) return;
  tables_[map].entries.erase(std::string(key));
}

size_t MapStore::size(uint32_t map) const {
  return map < tables_.size() ? tables_[map].entries.size() : 0;
}

std::vector<output::MapEntry> MapStore::entries(uint32_t map) const {
  std::vector<output::MapEntry> out;
  if (map >= tables_.size()) return out;
  out.reserve(tables_[map].entries.size());
  for (const auto& [key, value] : tables_[map].entries)
    out.push_back(output::MapEntry{key, value});
  return out;
}

} // namespace dprobe::runtime
