#include "agent/region_reader.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "agent/blob/keys.h"
#include "agent/region_access.h"
#include "bytecode/aggregate.h"

namespace dprobe::agent {

namespace {

using detail::inside;
using detail::load;
using detail::object_at;

uint64_t align8(uint64_t v) {
  return (v + 7) & ~7ull;
}

} // namespace

Result<RegionReader> RegionReader::create(std::span<uint8_t> region, RegionLayout layout) {
  if (reinterpret_cast<uintptr_t>(region.data()) % abi::kAreaAlign != 0) {
    return fail("agent region: mapping at {} is not 64-byte aligned",
                static_cast<const void*>(region.data()));
  }
  if (Status ok = validate_layout(layout, region.size()); !ok) return std::unexpected(ok.error());
  return RegionReader(region, std::move(layout));
}

std::vector<uint64_t> RegionReader::thread_blocks() {
  std::vector<uint64_t> blocks;
  const uint64_t block_size = abi::thread_block_size(layout_.probe_capacity, layout_.map_count);
  for (uint64_t i = 0; i < layout_.thread_slot_count; ++i) {
    const auto* slot = object_at<const abi::ThreadSlot>(region_, layout_.thread_slots.offset +
                                                                     i * sizeof(abi::ThreadSlot));
    if (slot == nullptr || load(&slot->key) == 0) continue;
    const uint64_t block = load(&slot->block);
    if (block == 0) continue;
    if (block % 8 != 0 || !inside(block, block_size, layout_.arena.offset, layout_.arena.size)) {
      ++problems_.bad_tables;
      continue;
    }
    blocks.push_back(block);
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}

std::vector<uint64_t> RegionReader::map_tables(uint32_t map_id) {
  if (map_id >= layout_.map_count) return {};
  const MapLayout& map = layout_.maps[map_id];
  const uint64_t table_size = abi::map_table_size(map.key_size, map.capacity, map.value_words);

  // Candidate tables: the map's shared one, then each thread's.
  std::vector<uint64_t> candidates;
  if (const auto* desc = object_at<const abi::MapDesc>(
          region_, layout_.map_descs.offset + uint64_t{map_id} * sizeof(abi::MapDesc))) {
    candidates.push_back(load(&desc->shared_table));
  }
  for (uint64_t block : thread_blocks()) {
    const auto* slot =
        object_at<const uint64_t>(region_, block + 8 * (uint64_t{layout_.probe_capacity} + map_id));
    if (slot != nullptr) candidates.push_back(load(slot));
  }
  // Tables of one map never overlap: accepting only disjoint ones bounds the work by the arena's
  // size whatever offsets the target wrote.
  std::vector<std::pair<uint64_t, uint64_t>> accepted; // [begin, end)
  std::vector<uint64_t> tables;
  for (uint64_t offset : candidates) {
    if (offset == 0) continue;
    if (offset % 8 != 0 || !inside(offset, table_size, layout_.arena.offset, layout_.arena.size)) {
      ++problems_.bad_tables;
      continue;
    }
    const uint64_t end = offset + table_size;
    const bool overlaps = std::any_of(accepted.begin(), accepted.end(), [&](const auto& r) {
      return offset < r.second && r.first < end;
    });
    if (overlaps) {
      if (std::find(tables.begin(), tables.end(), offset) == tables.end()) ++problems_.bad_tables;
      continue;
    }
    accepted.emplace_back(offset, end);
    tables.push_back(offset);
  }

  return tables;
}

std::vector<output::MapEntry> RegionReader::map_entries(uint32_t map_id) {
  if (map_id >= layout_.map_count) return {};
  const MapLayout& map = layout_.maps[map_id];
  const uint64_t stride = abi::map_entry_stride(map.key_size, map.value_words);
  const std::vector<uint64_t> tables = map_tables(map_id);
  // Tables merge by the map's rule; an assigned (Int) map that is sharded anyway only ever
  // received adds, so its tables sum.
  bytecode::MapValueKind rule_kind = map.value_kind;
  if (bytecode::merge_rule(rule_kind) == bytecode::MergeRule::Any && map.mode == abi::kMapSharded) {
    rule_kind = bytecode::MapValueKind::Sum;
  }
  const uint32_t words = map.value_words;
  std::unordered_map<std::string, std::vector<uint64_t>> merged;
  std::vector<uint64_t> value(words);
  for (uint64_t table : tables) {
    const uint64_t entries = table + sizeof(abi::MapTableHeader);
    for (uint64_t i = 0; i < map.capacity; ++i) {
      const uint64_t at = entries + i * stride;
      const auto* e = object_at<const abi::MapTableEntry>(region_, at);
      if (e == nullptr || load(&e->state) != abi::kEntryLive) continue;
      // Every word lies inside the accepted table: at + stride <= table + table_size.
      value[0] = load(&e->value);
      for (uint32_t w = 1; w < words; ++w) {
        value[w] = load(reinterpret_cast<const uint64_t*>(
            region_.data() + at + abi::map_entry_word_offset(map.key_size, w)));
      }
      std::string key(reinterpret_cast<const char*>(region_.data() + at + sizeof *e), map.key_size);
      auto [it, fresh] = merged.try_emplace(std::move(key), value);
      if (!fresh) bytecode::merge_value(rule_kind, it->second.data(), value.data(), words);
    }
  }
  std::vector<output::MapEntry> result;
  result.reserve(merged.size());
  for (auto& [key, words_of] : merged) {
    output::MapEntry entry{key, words_of.front(), {}};
    entry.rest.assign(words_of.begin() + 1, words_of.end());
    result.push_back(std::move(entry));
  }
  return result;
}

bool RegionReader::lookup(uint32_t map_id, std::string_view key, std::vector<uint64_t>& words) {
  if (map_id >= layout_.map_count) return false;
  const MapLayout& map = layout_.maps[map_id];
  if (key.size() != map.key_size || map.capacity == 0) return false;
  const uint64_t stride = abi::map_entry_stride(map.key_size, map.value_words);
  bytecode::MapValueKind rule_kind = map.value_kind;
  if (bytecode::merge_rule(rule_kind) == bytecode::MergeRule::Any && map.mode == abi::kMapSharded) {
    rule_kind = bytecode::MapValueKind::Sum;
  }
  const auto* wanted = reinterpret_cast<const uint8_t*>(key.data());
  const uint32_t start = blob::hash_key(wanted, map.key_size) % map.capacity;
  std::vector<uint64_t> value(map.value_words);
  bool found = false;
  for (uint64_t table : map_tables(map_id)) {
    const uint64_t entries = table + sizeof(abi::MapTableHeader);
    // Linear probing as the agent inserts: a key (and a second copy of it, inserted past an
    // entry that stayed busy) lies between its hash's slot and the next empty entry.
    for (uint64_t n = 0, i = start; n < map.capacity; ++n, i = (i + 1) % map.capacity) {
      const uint64_t at = entries + i * stride;
      const auto* e = object_at<const abi::MapTableEntry>(region_, at);
      if (e == nullptr) break;
      const uint32_t state = load(&e->state);
      if (state == abi::kEntryEmpty) break;
      if (state != abi::kEntryLive ||
          std::memcmp(region_.data() + at + sizeof *e, wanted, map.key_size) != 0) {
        continue;
      }
      value[0] = load(&e->value);
      for (uint32_t w = 1; w < map.value_words; ++w) {
        value[w] = load(reinterpret_cast<const uint64_t*>(
            region_.data() + at + abi::map_entry_word_offset(map.key_size, w)));
      }
      if (!found) {
        words = value;
        found = true;
      } else {
        bytecode::merge_value(rule_kind, words.data(), value.data(), map.value_words);
      }
    }
  }
  return found;
}

void RegionReader::reset_map(uint32_t map_id, bool zero_only) {
  if (map_id >= layout_.map_count) return;
  const MapLayout& map = layout_.maps[map_id];
  const uint64_t stride = abi::map_entry_stride(map.key_size, map.value_words);
  for (uint64_t table : map_tables(map_id)) {
    const uint64_t entries = table + sizeof(abi::MapTableHeader);
    for (uint64_t i = 0; i < map.capacity; ++i) {
      const uint64_t at = entries + i * stride;
      auto* e = object_at<abi::MapTableEntry>(region_, at);
      if (e == nullptr || load(&e->state) != abi::kEntryLive) continue;
      if (!zero_only) {
        detail::store(&e->state, static_cast<uint32_t>(abi::kEntryDeleted));
        continue;
      }
      detail::store(&e->value, uint64_t{0});
      for (uint32_t w = 1; w < map.value_words; ++w) {
        detail::store(reinterpret_cast<uint64_t*>(region_.data() + at +
                                                  abi::map_entry_word_offset(map.key_size, w)),
                      uint64_t{0});
      }
    }
  }
}

void RegionReader::reset_ring(uint64_t /*tail*/, uint64_t head) {
  ++problems_.ring_resets;
  auto* ring = object_at<abi::RingHeader>(region_, layout_.ring.offset);
  std::memset(region_.data() + layout_.ring.offset + sizeof(abi::RingHeader), 0,
              layout_.ring_capacity());
  detail::store(&ring->tail, head);
  stuck_tail_ = UINT64_MAX;
}

size_t RegionReader::drain_events(std::vector<PrintfEvent>& out, size_t max_events) {
  return visit_events(
      [](void* context, uint32_t format_id, std::span<const uint8_t> args) {
        static_cast<std::vector<PrintfEvent>*>(context)->push_back(
            PrintfEvent{format_id, std::vector<uint8_t>(args.begin(), args.end())});
      },
      &out, max_events);
}

size_t RegionReader::visit_events(EventVisitor visit, void* context, size_t max_events,
                                  MapCommandVisitor on_command) {
  auto* ring = object_at<abi::RingHeader>(region_, layout_.ring.offset);
  if (ring == nullptr) return 0;
  uint8_t* data = region_.data() + layout_.ring.offset + sizeof(abi::RingHeader);
  const uint64_t capacity = layout_.ring_capacity();
  const uint64_t head = load(&ring->head);
  uint64_t tail = load(&ring->tail);
  if (head - tail > capacity || head % 8 != 0 || tail % 8 != 0) {
    reset_ring(tail, head);
    return 0;
  }
  // Consumed bytes are zeroed before tail moves past them (a zero header is how producers'
  // records start), one memset per contiguous run rather than one per record.
  uint64_t run_start = tail; // [run_start, tail) consumed, not zeroed yet, contiguous
  auto zero_run = [&] {
    std::memset(data + (run_start & (capacity - 1)), 0, tail - run_start);
    run_start = tail;
  };
  size_t visited = 0;
  while (tail != head && visited < max_events) {
    const uint64_t pos = tail & (capacity - 1);
    if (pos == 0) zero_run(); // records never cross the ring's end, runs do not either
    const uint64_t word = load(reinterpret_cast<const uint64_t*>(data + pos));
    const uint32_t size = static_cast<uint32_t>(word);
    const uint32_t meta = static_cast<uint32_t>(word >> 32);
    if (size == 0) break; // reserved, not written yet
    if (size % 8 != 0 || size > capacity - pos || size > head - tail) {
      zero_run();
      detail::store(&ring->tail, tail);
      reset_ring(tail, head);
      return visited;
    }
    if (!(meta & abi::kRecordCommitted)) {
      const auto now = std::chrono::steady_clock::now();
      if (tail != stuck_tail_) {
        stuck_tail_ = tail;
        stuck_since_ = now;
      }
      if (now - stuck_since_ < stuck_timeout_) break;
      ++problems_.skipped_records; // its producer is gone: step over it
    } else if (meta & abi::kRecordMapCommand) {
      const uint32_t map_id = meta & abi::kRecordFormatMask;
      const uint64_t command =
          size == sizeof(abi::RecordHeader) + 8
              ? load(reinterpret_cast<const uint64_t*>(data + pos + sizeof(abi::RecordHeader)))
              : UINT64_MAX;
      if ((meta & abi::kRecordPadding) || map_id >= layout_.map_count ||
          command > UINT32_MAX ||
          bytecode::map_command_kind(static_cast<uint32_t>(command)) >=
              static_cast<uint32_t>(bytecode::MapCommandKind::kCount)) {
        ++problems_.bad_records;
      } else {
        if (on_command != nullptr) on_command(context, map_id, static_cast<uint32_t>(command));
        ++visited;
      }
    } else if (!(meta & abi::kRecordPadding)) {
      const uint32_t format = meta & abi::kRecordFormatMask;
      if (format >= layout_.format_count ||
          sizeof(abi::RecordHeader) + align8(layout_.format_sizes[format]) != size) {
        ++problems_.bad_records;
      } else {
        const uint32_t args_size = layout_.format_sizes[format];
        if (scratch_.size() < args_size) scratch_.resize(args_size);
        // Word by word (the sizes are small; the library call would cost more than the copy).
        const uint8_t* payload = data + pos + sizeof(abi::RecordHeader);
        uint32_t i = 0;
        for (; i + 8 <= args_size; i += 8)
          std::memcpy(scratch_.data() + i, payload + i, 8);
        for (; i < args_size; ++i)
          scratch_[i] = payload[i];
        visit(context, format, std::span<const uint8_t>(scratch_.data(), args_size));
        ++visited;
      }
    }
    tail += size;
  }
  zero_run();
  detail::store(&ring->tail, tail);
  return visited;
}

abi::RegionCounters RegionReader::counters() const {
  abi::RegionCounters c{};
  const auto* h = object_at<const abi::RegionHeader>(region_, 0);
  if (h == nullptr) return c;
  const auto* from = reinterpret_cast<const uint64_t*>(&h->counters);
  auto* to = reinterpret_cast<uint64_t*>(&c);
  for (size_t i = 0; i < sizeof c / 8; ++i)
    to[i] = load(from + i);
  return c;
}

uint64_t RegionReader::probe_hits(uint32_t probe_id) {
  if (probe_id >= layout_.probe_capacity) return 0;
  uint64_t hits = 0;
  if (const auto* probe = object_at<const abi::ProbeEntry>(
          region_, layout_.probes.offset + uint64_t{probe_id} * sizeof(abi::ProbeEntry))) {
    hits += load(&probe->shared_hits);
  }
  for (uint64_t block : thread_blocks()) {
    if (const auto* count = object_at<const uint64_t>(region_, block + 8 * uint64_t{probe_id})) {
      hits += load(count);
    }
  }
  return hits;
}

bool RegionReader::exit_requested() const {
  const auto* h = object_at<const abi::RegionHeader>(region_, 0);
  return h != nullptr && load(&h->exit_requested) != 0;
}

} // namespace dprobe::agent
