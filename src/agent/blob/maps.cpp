// Map tables in the region: open addressing with linear probing, entries claimed with a CAS on
// their state word, never moved or freed (a deleted entry keeps its key as a tombstone).
//
// Sharded maps (only ever aggregated into: counts, sums, min/max, avg/stats, histograms) keep one
// table per thread: an update is plain instructions on memory no other thread writes. Shared
// maps (and every map on the shared path) keep one table per map, updated with atomic
// instructions. dprobe merges the tables by each map's rule (bytecode/aggregate.h).
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"
#include "agent/blob/keys.h"
#include "bytecode/aggregate.h"

namespace dprobe::agent::blob {

namespace {

/// How many times an update waits for an entry another thread is inserting before it treats
/// the entry as a different key. A signal handler nested on the inserting thread would wait
/// forever, so the wait must end; giving up may store the key twice, which dprobe's merge
/// (sum for counts) absorbs.
constexpr uint32_t kBusyWaitLimit = 256;

void copy_key(uint8_t* dst, const uint8_t* src, uint32_t size) {
  for (uint32_t i = 0; i < size; ++i)
    dst[i] = src[i];
}

struct Table {
  abi::MapTableHeader* header;
  uint8_t* entries;
  uint64_t stride;
  uint32_t mask;
  uint32_t max_entries;
  uint32_t key_size;
  uint32_t value_words;
  bool shared; ///< other threads write this table: atomic value updates, bounded busy waits
};

inline abi::MapTableEntry* entry_at(const Table& t, uint32_t i) {
  return reinterpret_cast<abi::MapTableEntry*>(t.entries + i * t.stride);
}
inline uint8_t* entry_key(abi::MapTableEntry* e) {
  return reinterpret_cast<uint8_t*>(e + 1);
}

/// Word i of an entry's value (i < value_words).
inline uint64_t* value_word(const Table& t, abi::MapTableEntry* e, uint32_t i) {
  if (i == 0) return &e->value;
  return reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(e) +
                                     abi::map_entry_word_offset(t.key_size, i));
}

void add_word(const Table& t, uint64_t* word, uint64_t value) {
  if (t.shared) {
    fetch_add(word, value);
  } else {
    local_add(word, value);
  }
}

/// Applies `op` to the entry's value (UpdateOp semantics, isa.h); false when it cannot apply
/// (bucket out of range, an avg on a one-word value).
bool apply(const Table& t, abi::MapTableEntry* e, uint32_t op, uint64_t value) {
  switch (static_cast<bytecode::UpdateOp>(op)) {
  case bytecode::UpdateOp::Add:
    add_word(t, &e->value, value);
    return true;
  case bytecode::UpdateOp::Set:
    store_relaxed(&e->value, value);
    return true;
  case bytecode::UpdateOp::Max: {
    uint64_t old = load_relaxed(&e->value);
    while (static_cast<int64_t>(value) >= static_cast<int64_t>(old)) {
      if (!t.shared) {
        store_relaxed(&e->value, value);
        return true;
      }
      if (compare_swap(&e->value, &old, value)) return true;
    }
    return true;
  }
  case bytecode::UpdateOp::Avg:
    if (t.value_words < 2) return false;
    add_word(t, value_word(t, e, 0), 1);
    add_word(t, value_word(t, e, 1), value);
    return true;
  case bytecode::UpdateOp::Bucket:
    if (value >= t.value_words) return false;
    add_word(t, value_word(t, e, static_cast<uint32_t>(value)), 1);
    return true;
  case bytecode::UpdateOp::kCount:
    break;
  }
  return false;
}

void zero_value(const Table& t, abi::MapTableEntry* e) {
  for (uint32_t i = 0; i < t.value_words; ++i)
    store_relaxed(value_word(t, e, i), uint64_t{0});
}

/// Waits (boundedly) for a Busy entry to settle; returns its state then.
uint32_t settle(const Table& t, abi::MapTableEntry* e, uint32_t state) {
  if (!t.shared) return state; // only a nested call of ours can be inserting: it will not finish
  for (uint32_t spin = 0; state == abi::kEntryBusy && spin < kBusyWaitLimit; ++spin) {
    __builtin_ia32_pause();
    state = load_acquire(&e->state);
  }
  return state;
}

enum class Find { Found, Absent, Full };

/// Finds the entry for `key`; with `insert`, claims an empty entry (value 0) when the key is
/// absent and revives a tombstone. Found entries are Live.
Find find(const Table& t, const uint8_t* key, bool insert, abi::MapTableEntry** out) {
  const uint32_t hash = hash_key(key, t.key_size);
  uint32_t i = hash & t.mask;
  for (uint32_t n = 0; n <= t.mask; ++n, i = (i + 1) & t.mask) {
    abi::MapTableEntry* e = entry_at(t, i);
    uint32_t state = load_acquire(&e->state);
    for (;;) { // re-examines this entry after a lost race; each entry changes state few times
      if (state == abi::kEntryEmpty) {
        if (!insert) return Find::Absent;
        if (load_relaxed(&t.header->used) >= t.max_entries) return Find::Full;
        if (!compare_swap(&e->state, &state, static_cast<uint32_t>(abi::kEntryBusy))) continue;
        e->hash = hash;
        copy_key(entry_key(e), key, t.key_size);
        fetch_add(&t.header->used, uint32_t{1});
        store_release(&e->state, static_cast<uint32_t>(abi::kEntryLive));
        *out = e;
        return Find::Found;
      }
      if (state == abi::kEntryBusy) {
        state = settle(t, e, state);
        if (state == abi::kEntryBusy) break; // treat as another key
        continue;
      }
      if (e->hash != hash || !keys_equal(entry_key(e), key, t.key_size)) break;
      if (state == abi::kEntryLive) {
        *out = e;
        return Find::Found;
      }
      // A tombstone of this key.
      if (!insert) return Find::Absent;
      if (!compare_swap(&e->state, &state, static_cast<uint32_t>(abi::kEntryBusy))) continue;
      zero_value(t, e);
      store_release(&e->state, static_cast<uint32_t>(abi::kEntryLive));
      *out = e;
      return Find::Found;
    }
  }
  return insert ? Find::Full : Find::Absent;
}

/// The table to use for map `map_id` on this hit, created on first use when `create`; false
/// when the map id is bad, the table does not exist, or no arena is left.
bool table_for(RegionHeader* h, uint64_t* block, uint32_t map_id, bool create, Table* out) {
  if (map_id >= h->map_count) return false;
  abi::MapDesc* desc = area<abi::MapDesc>(h, h->map_descs) + map_id;
  const bool sharded = desc->mode == abi::kMapSharded && block != nullptr;
  uint64_t* slot = sharded ? &block[h->probe_capacity + map_id] : &desc->shared_table;
  uint64_t offset = load_acquire(slot);
  if (__builtin_expect(offset == 0, 0)) {
    if (!create) return false;
    const uint64_t fresh =
        arena_alloc(h, abi::map_table_size(desc->key_size, desc->capacity, desc->value_words));
    if (fresh == 0) return false;
    auto* header = at_offset<abi::MapTableHeader>(h, fresh);
    header->map_id = map_id;
    header->capacity = desc->capacity;
    uint64_t expected = 0;
    offset = compare_swap(slot, &expected, fresh) ? fresh : expected;
  }
  out->header = at_offset<abi::MapTableHeader>(h, offset);
  out->entries = reinterpret_cast<uint8_t*>(out->header + 1);
  out->stride = abi::map_entry_stride(desc->key_size, desc->value_words);
  out->mask = desc->capacity - 1;
  out->max_entries = desc->max_entries;
  out->key_size = desc->key_size;
  out->value_words = desc->value_words;
  out->shared = !sharded;
  return true;
}

} // namespace

bool map_update(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size, uint32_t op, uint64_t value) {
  // max() of a negative value changes nothing and creates no entry (bytecode/aggregate.h).
  if (op < static_cast<uint32_t>(bytecode::UpdateOp::kCount) &&
      bytecode::update_is_noop(static_cast<bytecode::UpdateOp>(op), value)) {
    return true;
  }
  Table t;
  abi::MapTableEntry* e = nullptr;
  // No arena left for this thread's table: the map's shared table takes the update instead.
  const bool have_table = table_for(h, block, map_id, true, &t) ||
                          (block != nullptr && table_for(h, nullptr, map_id, true, &t));
  if (op < static_cast<uint32_t>(bytecode::UpdateOp::kCount) && have_table &&
      t.key_size == key_size && find(t, key, true, &e) == Find::Found && apply(t, e, op, value)) {
    return true;
  }
  count_event(&h->counters.dropped_map_updates);
  return false;
}

bool map_lookup(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size, uint64_t* value) {
  Table t;
  abi::MapTableEntry* e = nullptr;
  if (!table_for(h, block, map_id, false, &t) || t.key_size != key_size ||
      find(t, key, false, &e) != Find::Found) {
    return false;
  }
  *value = load_relaxed(&e->value);
  return true;
}

void map_delete(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size) {
  Table t;
  abi::MapTableEntry* e = nullptr;
  if (!table_for(h, block, map_id, false, &t) || t.key_size != key_size ||
      find(t, key, false, &e) != Find::Found) {
    return;
  }
  uint32_t expected = abi::kEntryLive;
  compare_swap(&e->state, &expected, static_cast<uint32_t>(abi::kEntryDeleted));
}

namespace {

/// clear()/zero() of one table: live entries become tombstones, or keep their keys with value 0.
void reset_table(RegionHeader* h, const abi::MapDesc* desc, uint64_t offset, bool zero_only) {
  if (offset == 0) return;
  Table t;
  t.header = at_offset<abi::MapTableHeader>(h, offset);
  t.entries = reinterpret_cast<uint8_t*>(t.header + 1);
  t.stride = abi::map_entry_stride(desc->key_size, desc->value_words);
  t.mask = desc->capacity - 1;
  t.key_size = desc->key_size;
  t.value_words = desc->value_words;
  for (uint32_t i = 0; i <= t.mask; ++i) {
    abi::MapTableEntry* e = entry_at(t, i);
    if (load_acquire(&e->state) != abi::kEntryLive) continue;
    if (zero_only) {
      zero_value(t, e);
    } else {
      uint32_t expected = abi::kEntryLive;
      compare_swap(&e->state, &expected, static_cast<uint32_t>(abi::kEntryDeleted));
    }
  }
}

} // namespace

void map_reset(RegionHeader* h, uint32_t map_id, bool zero_only) {
  if (map_id >= h->map_count) return;
  const abi::MapDesc* desc = area<abi::MapDesc>(h, h->map_descs) + map_id;
  reset_table(h, desc, load_acquire(&desc->shared_table), zero_only);
  // Every thread's table: another thread's plain adds may race with this, as hits race with
  // bpftrace's clear(); a hit lands wholly before or after in the common case.
  const auto* slots = area<abi::ThreadSlot>(h, h->thread_slots);
  for (uint32_t i = 0; i < h->thread_slot_count; ++i) {
    const uint64_t block = load_acquire(&slots[i].block);
    if (block == 0) continue;
    const auto* tables = at_offset<uint64_t>(h, block);
    reset_table(h, desc, load_acquire(&tables[h->probe_capacity + map_id]), zero_only);
  }
}

} // namespace dprobe::agent::blob
