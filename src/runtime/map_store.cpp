#include "runtime/map_store.h"

#include <algorithm>

#include "bytecode/aggregate.h"

namespace dprobe::runtime {

MapStore::MapStore(const std::vector<bytecode::MapSchema>& schemas) {
  tables_.reserve(schemas.size());
  for (const bytecode::MapSchema& schema : schemas) {
    Table t;
    t.key_size = schema.key_size();
    t.capacity = schema.max_entries;
    t.words = std::max<uint32_t>(schema.value_words(), 1);
    t.kind = schema.value;
    tables_.push_back(std::move(t));
  }
}

const MapStore::Table* MapStore::table(uint32_t map, std::string_view key) const {
  if (map >= tables_.size() || key.size() != tables_[map].key_size) return nullptr;
  return &tables_[map];
}

std::vector<uint64_t>* MapStore::entry(Table& t, std::string_view key) {
  auto it = t.entries.find(std::string(key));
  if (it == t.entries.end()) {
    if (t.entries.size() >= t.capacity) {
      ++dropped_;
      return nullptr;
    }
    it = t.entries.emplace(std::string(key), std::vector<uint64_t>(t.words, 0)).first;
  }
  return &it->second;
}

bool MapStore::lookup(uint32_t map, std::string_view key, uint64_t* value) const {
  const Table* t = table(map, key);
  if (t == nullptr) return false;
  const auto it = t->entries.find(std::string(key));
  if (it == t->entries.end()) return false;
  *value = it->second.front();
  return true;
}

bool MapStore::update(uint32_t map, std::string_view key, bytecode::UpdateOp op, uint64_t value) {
  if (table(map, key) == nullptr || op >= bytecode::UpdateOp::kCount) return false;
  if (bytecode::update_is_noop(op, value)) return true;
  Table& t = tables_[map];
  std::vector<uint64_t>* words = entry(t, key);
  if (words == nullptr) return false;
  return bytecode::apply_update(op, value, words->data(), t.words);
}

bool MapStore::merge(uint32_t map, std::string_view key, std::span<const uint64_t> words) {
  if (table(map, key) == nullptr || words.size() != tables_[map].words) return false;
  Table& t = tables_[map];
  const bool fresh = t.entries.find(std::string(key)) == t.entries.end();
  std::vector<uint64_t>* value = entry(t, key);
  if (value == nullptr) return false;
  // An assigned value from elsewhere is the newer one: it replaces ours.
  if (fresh || bytecode::merge_rule(t.kind) == bytecode::MergeRule::Any) {
    std::copy(words.begin(), words.end(), value->begin());
  } else {
    bytecode::merge_value(t.kind, value->data(), words.data(), t.words);
  }
  return true;
}

void MapStore::remove(uint32_t map, std::string_view key) {
  if (table(map, key) == nullptr) return;
  tables_[map].entries.erase(std::string(key));
}

void MapStore::clear(uint32_t map) {
  if (map < tables_.size()) tables_[map].entries.clear();
}

void MapStore::zero(uint32_t map) {
  if (map >= tables_.size()) return;
  for (auto& [key, words] : tables_[map].entries)
    std::fill(words.begin(), words.end(), 0);
}

size_t MapStore::size(uint32_t map) const {
  return map < tables_.size() ? tables_[map].entries.size() : 0;
}

std::vector<output::MapEntry> MapStore::entries(uint32_t map) const {
  std::vector<output::MapEntry> out;
  if (map >= tables_.size()) return out;
  out.reserve(tables_[map].entries.size());
  for (const auto& [key, words] : tables_[map].entries) {
    output::MapEntry e{key, words.front(), {}};
    e.rest.assign(words.begin() + 1, words.end());
    out.push_back(std::move(e));
  }
  return out;
}

} // namespace dprobe::runtime
