// Invariant 8: whatever the target writes into the region, the reader neither crashes, nor
// touches memory outside the region, nor writes anywhere but the ring it consumes.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

constexpr const char* kScript =
    "uprobe:/bin/true:f { @c[arg0] = count(); @n = count(); printf(\"%d %s\\n\", arg0, comm); }"
    "uprobe:/bin/true:g { @x[arg1] = arg0; @s[str(arg1)] = count(); }";

/// Everything the reader offers, over whatever is in the region now.
void read_everything(RegionReader& reader) {
  for (uint32_t map = 0; map < reader.layout().map_count + 2; ++map) {
    (void)reader.map_entries(map);
  }
  for (uint32_t probe = 0; probe < reader.layout().probe_capacity + 2; ++probe) {
    (void)reader.probe_hits(probe);
  }
  std::vector<PrintfEvent> events;
  for (int i = 0; i < 3; ++i)
    reader.drain_events(events);
  for (const PrintfEvent& e : events) {
    ASSERT_LT(e.format_id, reader.layout().format_count);
    ASSERT_EQ(e.args.size(), reader.layout().format_sizes[e.format_id]);
  }
  (void)reader.counters();
  (void)reader.exit_requested();
}

/// A region with real activity in it: thread blocks, tables, ring records.
std::unique_ptr<Harness> busy_region(RegionOptions options = Harness::default_options()) {
  options.arena_bytes = 1u << 20;
  options.features |= abi::kFeatureTlsSelfPointer; // thread slots with or without FSGSBASE
  auto h = std::make_unique<Harness>(kScript, AgentKind::Native, options);
  for (uint64_t i = 0; i < 50; ++i) {
    h->hit(0, i % 5);
    h->hit(1, i, reinterpret_cast<uint64_t>("key"));
  }
  return h;
}

TEST(ReaderGarbage, RandomBytesEverywhere) {
  auto h = busy_region();
  std::mt19937_64 rng(1234);
  std::span<uint8_t> region = h->region();
  for (int round = 0; round < 40; ++round) {
    // Whole region, or only the agent-written parts, or sparse words.
    const int mode = round % 3;
    if (mode == 0) {
      for (auto& b : region)
        b = static_cast<uint8_t>(rng());
    } else if (mode == 1) {
      for (uint64_t off = h->layout().thread_slots.offset; off < region.size(); ++off) {
        region[off] = static_cast<uint8_t>(rng());
      }
    } else {
      for (int i = 0; i < 20000; ++i) {
        const uint64_t off = rng() % (region.size() / 8) * 8;
        uint64_t value = rng();
        if (rng() % 2) value = rng() % region.size(); // plausible offsets hurt the most
        std::memcpy(region.data() + off, &value, 8);
      }
    }
    read_everything(h->reader());
    // A layout recovered from the garbage (when it happens to parse) is just as safe.
    if (auto layout = read_layout(region)) {
      auto reader = RegionReader::create(region, *layout);
      if (reader) read_everything(*reader);
    }
  }
}

TEST(ReaderGarbage, PlausibleHeaderWithGarbageBehind) {
  auto h = busy_region();
  std::span<uint8_t> region = h->region();
  std::mt19937_64 rng(99);
  const RegionLayout& l = h->layout();
  const auto kept = [&](uint64_t off) { // the tables read_layout itself parses
    return (off >= l.map_descs.offset && off < l.map_descs.offset + l.map_descs.size) ||
           (off >= l.vm_formats.offset && off < l.vm_formats.offset + l.vm_formats.size);
  };
  for (int round = 0; round < 20; ++round) {
    for (uint64_t off = abi::kHeaderAreaSize; off < region.size(); off += 8) {
      if (kept(off)) continue;
      const uint64_t value = rng() % 4 == 0 ? rng() % region.size() : rng();
      std::memcpy(region.data() + off, &value, 8);
    }
    auto layout = read_layout(region);
    ASSERT_TRUE(layout.has_value()) << layout.error().message;
    auto reader = RegionReader::create(region, *layout);
    ASSERT_TRUE(reader.has_value());
    read_everything(*reader);
  }
  // With those tables garbled too, read_layout refuses (or accepts a layout that is safe).
  for (uint64_t off = abi::kHeaderAreaSize; off < region.size(); off += 8) {
    const uint64_t value = rng();
    std::memcpy(region.data() + off, &value, 8);
  }
  if (auto layout = read_layout(region)) {
    auto reader = RegionReader::create(region, *layout);
    if (reader) read_everything(*reader);
  }
}

TEST(ReaderGarbage, HostileHeaderFieldsAreRefused) {
  auto h = busy_region();
  std::span<uint8_t> region = h->region();
  auto* header = reinterpret_cast<abi::RegionHeader*>(region.data());
  const abi::RegionHeader saved = *header;
  const auto refuse = [&](const char* what) {
    EXPECT_FALSE(read_layout(region).has_value()) << what;
    *header = saved;
  };
  header->size = region.size() * 2;
  refuse("size past the mapping");
  header->arena.offset = region.size() - 64;
  refuse("arena past the end");
  header->arena.size = UINT64_MAX - 100;
  refuse("arena size overflow");
  header->map_count = UINT32_MAX;
  refuse("map count past its area");
  header->format_count = 1u << 30;
  refuse("format count past its area");
  header->thread_slot_count = 1u << 31;
  refuse("thread slots past their area");
  header->ring.size = 4096 + 128 + 8;
  refuse("ring not a power of two");
  header->version = 99;
  refuse("version");
  EXPECT_TRUE(read_layout(region).has_value());
}

TEST(ReaderGarbage, WritesOnlyTheRingItConsumes) {
  auto h = busy_region();
  std::span<uint8_t> region = h->region();
  std::mt19937_64 rng(7);
  for (auto& b : region)
    b = static_cast<uint8_t>(rng());
  const std::vector<uint8_t> before(region.begin(), region.end());
  read_everything(h->reader());
  const uint64_t ring_begin = h->layout().ring.offset;
  const uint64_t ring_end = ring_begin + h->layout().ring.size;
  const uint64_t tail_begin = ring_begin + offsetof(abi::RingHeader, tail);
  for (uint64_t i = 0; i < region.size(); ++i) {
    const bool ring_data = i >= ring_begin + sizeof(abi::RingHeader) && i < ring_end;
    const bool tail = i >= tail_begin && i < tail_begin + 8;
    if (!ring_data && !tail) {
      ASSERT_EQ(region[i], before[i]) << "byte " << i << " written";
    }
  }
}

TEST(ReaderGarbage, TargetedRingCorruption) {
  auto h = busy_region();
  RegionReader& reader = h->reader();
  auto* ring = reinterpret_cast<abi::RingHeader*>(h->region().data() + h->layout().ring.offset);
  auto* data = reinterpret_cast<uint8_t*>(ring + 1);
  const uint64_t capacity = h->layout().ring_capacity();
  std::vector<PrintfEvent> events;

  // Head far ahead of tail.
  ring->head = ring->tail + capacity + 8;
  EXPECT_EQ(reader.drain_events(events), 0u);
  EXPECT_EQ(reader.problems().ring_resets, 1u);
  EXPECT_EQ(ring->tail, ring->head);

  // A record claiming to be larger than the ring.
  const uint64_t at = ring->tail;
  const uint64_t huge = (uint64_t{abi::kRecordCommitted} << 32) | 0xfffffff8u;
  std::memcpy(data + (at & (capacity - 1)), &huge, 8);
  ring->head = at + 64;
  EXPECT_EQ(reader.drain_events(events), 0u);
  EXPECT_EQ(reader.problems().ring_resets, 2u);

  // A committed record with a format id out of range, then one of the wrong size, then a good
  // one: the first two are skipped, the third comes out.
  uint64_t pos = ring->tail;
  const auto put = [&](uint32_t size, uint32_t meta, uint64_t arg) {
    const uint64_t word = size | (uint64_t{meta} << 32);
    std::memcpy(data + (pos & (capacity - 1)), &word, 8);
    std::memcpy(data + (pos & (capacity - 1)) + 8, &arg, 8);
    pos += size;
  };
  put(8 + 72, abi::kRecordCommitted | 55, 1);
  put(16, abi::kRecordCommitted | 0, 2);
  put(8 + 72, abi::kRecordCommitted | 0, 3);
  ring->head = pos;
  events.clear();
  EXPECT_EQ(reader.drain_events(events), 1u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(bytecode::load_u64_le(events[0].args.data()), 3u);
  EXPECT_EQ(reader.problems().bad_records, 2u);
}

TEST(ReaderGarbage, HostileMapCommandRecords) {
  auto h = busy_region();
  RegionReader& reader = h->reader();
  auto* ring = reinterpret_cast<abi::RingHeader*>(h->region().data() + h->layout().ring.offset);
  auto* data = reinterpret_cast<uint8_t*>(ring + 1);
  const uint64_t capacity = h->layout().ring_capacity();
  std::vector<PrintfEvent> events;
  (void)reader.drain_events(events);
  uint64_t pos = ring->tail;
  const auto put = [&](uint32_t size, uint32_t meta, uint64_t arg) {
    const uint64_t word = size | (uint64_t{meta} << 32);
    std::memcpy(data + (pos & (capacity - 1)), &word, 8);
    std::memcpy(data + (pos & (capacity - 1)) + 8, &arg, 8);
    pos += size;
  };
  const uint32_t command = abi::kRecordCommitted | abi::kRecordMapCommand;
  put(16, command | 999, 0);                        // no such map
  put(16, command | 0, 77);                         // no such command
  put(24, command | 0, 0);                          // wrong size
  put(16, command | abi::kRecordPadding | 0, 0);    // padding and command at once
  put(16, command | 1, 1);                          // clear map 1: the only good one
  ring->head = pos;
  std::vector<std::pair<uint32_t, uint32_t>> seen;
  const auto on_printf = [](void*, uint32_t, std::span<const uint8_t>) {};
  const auto on_command = [](void* context, uint32_t map, uint32_t kind) {
    static_cast<std::vector<std::pair<uint32_t, uint32_t>>*>(context)->emplace_back(map, kind);
  };
  const uint64_t bad_before = reader.problems().bad_records;
  EXPECT_EQ(reader.visit_events(on_printf, &seen, SIZE_MAX, on_command), 1u);
  EXPECT_EQ(seen, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 1}}));
  EXPECT_EQ(reader.problems().bad_records - bad_before, 4u);
  EXPECT_EQ(ring->tail, ring->head);
}

TEST(ReaderGarbage, TargetedTableCorruption) {
  auto h = busy_region();
  RegionReader& reader = h->reader();
  const RegionLayout& layout = h->layout();
  auto* slots = reinterpret_cast<abi::ThreadSlot*>(h->region().data() + layout.thread_slots.offset);
  auto* descs = reinterpret_cast<abi::MapDesc*>(h->region().data() + layout.map_descs.offset);
  // Point the shared table of @x past the arena, and every free slot at one block whose table
  // offsets all alias the real thread's table.
  descs[2].shared_table = layout.arena.offset + layout.arena.size - 8;
  uint64_t real_block = 0;
  for (uint32_t i = 0; i < layout.thread_slot_count; ++i) {
    if (slots[i].key != 0) real_block = slots[i].block;
  }
  ASSERT_NE(real_block, 0u);
  for (uint32_t i = 0; i < layout.thread_slot_count; ++i) {
    if (slots[i].key == 0) {
      slots[i].key = 1000 + i;
      slots[i].block = i % 2 ? real_block : layout.size - 8;
    }
  }
  const auto c = reader.map_entries(0);
  uint64_t total = 0;
  for (const auto& e : c)
    total += e.value;
  EXPECT_EQ(total, 50u) << "aliased blocks are read once";
  EXPECT_TRUE(reader.map_entries(2).empty());
  EXPECT_GT(reader.problems().bad_tables, 0u);
  EXPECT_EQ(reader.probe_hits(0), 50u);
}

} // namespace
} // namespace dprobe::agent
