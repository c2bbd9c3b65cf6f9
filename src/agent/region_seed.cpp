#include "agent/region_seed.h"

#include <cstddef>
#include <cstring>

#include "abi/region.h"
#include "agent/blob/keys.h"
#include "agent/region_access.h"
#include "bytecode/aggregate.h"

namespace dprobe::agent {

namespace {

using detail::inside;
using detail::load;
using detail::object_at;
using detail::store;

template <class T> bool compare_swap(T* p, T* expected, T desired) {
  return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}

/// The map's shared table, allocated from the arena as the agent's arena_alloc does; 0 when
/// there is no room or the region is inconsistent.
uint64_t shared_table(std::span<uint8_t> region, const RegionLayout& layout, abi::MapDesc* desc,
                      uint32_t map_id, uint64_t table_size) {
  uint64_t table = load(&desc->shared_table);
  if (table != 0) {
    return table % 8 == 0 && inside(table, table_size, layout.arena.offset, layout.arena.size)
               ? table
               : 0;
  }
  auto* header = object_at<abi::RegionHeader>(region, 0);
  if (header == nullptr) return 0;
  constexpr uint64_t kAlign = abi::kArenaAlign;
  const uint64_t size = (table_size + kAlign - 1) & ~(kAlign - 1);
  const uint64_t base = layout.arena.offset;
  uint64_t used = load(&header->arena_used);
  uint64_t start = 0;
  for (;;) {
    start = ((base + used + kAlign - 1) & ~(kAlign - 1)) - base;
    if (used > layout.arena.size || start > layout.arena.size ||
        size > layout.arena.size - start) {
      return 0;
    }
    if (compare_swap(&header->arena_used, &used, start + size)) break;
  }
  const uint64_t fresh = base + start;
  std::memset(region.data() + fresh, 0, table_size);
  auto* table_header = object_at<abi::MapTableHeader>(region, fresh);
  table_header->map_id = map_id;
  table_header->capacity = layout.maps[map_id].capacity;
  uint64_t expected = 0;
  if (compare_swap(&desc->shared_table, &expected, fresh)) return fresh;
  // An agent thread made the table first: use its (the allocation stays unused).
  return expected % 8 == 0 && inside(expected, table_size, layout.arena.offset, layout.arena.size)
             ? expected
             : 0;
}

} // namespace

Status seed_shared_entry(std::span<uint8_t> region, const RegionLayout& layout, uint32_t map_id,
                         std::string_view key, std::span<const uint64_t> words) {
  if (map_id >= layout.map_count || map_id >= layout.maps.size()) {
    return fail("agent region: no map {}", map_id);
  }
  const MapLayout& map = layout.maps[map_id];
  if (key.size() != map.key_size || words.size() != map.value_words || map.capacity == 0) {
    return fail("agent region: map {}: key or value of the wrong size", map_id);
  }
  auto* desc = object_at<abi::MapDesc>(
      region, layout.map_descs.offset + uint64_t{map_id} * sizeof(abi::MapDesc));
  if (desc == nullptr) return fail("agent region: map {}: no descriptor", map_id);
  const uint64_t table_size = abi::map_table_size(map.key_size, map.capacity, map.value_words);
  const uint64_t table = shared_table(region, layout, desc, map_id, table_size);
  if (table == 0) return fail("agent region: map {}: no table (arena full or corrupt)", map_id);
  auto* table_header = object_at<abi::MapTableHeader>(region, table);
  const uint64_t stride = abi::map_entry_stride(map.key_size, map.value_words);
  const auto* wanted = reinterpret_cast<const uint8_t*>(key.data());
  const uint32_t hash = blob::hash_key(wanted, map.key_size);
  const auto word = [&](uint64_t at, uint32_t w) {
    return reinterpret_cast<uint64_t*>(region.data() + at +
                                       (w == 0 ? offsetof(abi::MapTableEntry, value)
                                               : abi::map_entry_word_offset(map.key_size, w)));
  };
  for (uint64_t n = 0, i = hash % map.capacity; n < map.capacity; ++n, i = (i + 1) % map.capacity) {
    const uint64_t at = table + sizeof(abi::MapTableHeader) + i * stride;
    auto* e = object_at<abi::MapTableEntry>(region, at);
    if (e == nullptr) break;
    uint32_t state = load(&e->state);
    if (state == abi::kEntryEmpty) {
      if (load(&table_header->used) >= map.max_entries) break;
      if (!compare_swap(&e->state, &state, static_cast<uint32_t>(abi::kEntryBusy))) continue;
      e->hash = hash;
      std::memcpy(region.data() + at + sizeof *e, wanted, map.key_size);
      for (uint32_t w = 0; w < map.value_words; ++w)
        store(word(at, w), words[w]);
      __atomic_fetch_add(&table_header->used, 1u, __ATOMIC_ACQ_REL);
      store(&e->state, static_cast<uint32_t>(abi::kEntryLive));
      return {};
    }
    if ((state != abi::kEntryLive && state != abi::kEntryDeleted) ||
        std::memcmp(region.data() + at + sizeof *e, wanted, map.key_size) != 0) {
      continue;
    }
    if (state == abi::kEntryDeleted) {
      // The key's tombstone: the agent revives it on its next insert, so the seed goes there.
      if (!compare_swap(&e->state, &state, static_cast<uint32_t>(abi::kEntryBusy))) continue;
      for (uint32_t w = 0; w < map.value_words; ++w)
        store(word(at, w), words[w]);
      store(&e->state, static_cast<uint32_t>(abi::kEntryLive));
      return {};
    }
    switch (bytecode::merge_rule(map.value_kind)) {
    case bytecode::MergeRule::Sum:
      for (uint32_t w = 0; w < map.value_words; ++w)
        __atomic_fetch_add(word(at, w), words[w], __ATOMIC_ACQ_REL);
      break;
    case bytecode::MergeRule::Max: {
      uint64_t old = load(word(at, 0));
      while (static_cast<int64_t>(words[0]) > static_cast<int64_t>(old) &&
             !compare_swap(word(at, 0), &old, words[0])) {
      }
      break;
    }
    case bytecode::MergeRule::Any:
      break;
    }
    return {};
  }
  return fail("agent region: map {} is full", map_id);
}

} // namespace dprobe::agent
