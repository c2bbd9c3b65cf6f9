// Controller-side reading of the region the agent fills: merged maps, printf events, counters.
// Everything read here is untrusted (DESIGN.md, invariant 8): the target can write any byte of
// the region at any time. Each offset, length and index is checked against the controller's own
// RegionLayout before use, each word is read once, and the work done is bounded by the region's
// size, so a hostile target can lose its own events but never crash dprobe, make it touch memory
// outside the region, or keep it busy for long.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "abi/region.h"
#include "abi/unwind.h"
#include "agent/region_layout.h"
#include "common/result.h"
#include "output/map_printer.h"

namespace dprobe::agent {

struct PrintfEvent {
  uint32_t format_id = 0;    ///< < layout.format_count
  std::vector<uint8_t> args; ///< exactly layout.format_sizes[format_id] packed bytes
};

/// What the reader found wrong in the region (all zero unless the target misbehaves or a
/// producer died mid-record).
struct ReaderProblems {
  uint64_t bad_records = 0;     ///< records with a bad format id or size, skipped
  uint64_t skipped_records = 0; ///< records never committed (their producer died), skipped
  uint64_t ring_resets = 0;     ///< the ring's positions made no sense: everything dropped
  uint64_t bad_tables = 0;      ///< thread blocks or map tables outside the arena, ignored
};

class RegionReader {
 public:
  /// `region` is dprobe's own mapping, `layout` the one it planned (or read_layout's result).
  [[nodiscard]] static Result<RegionReader> create(std::span<uint8_t> region, RegionLayout layout);

  /// Map `map_id` merged over all tables: one entry per key (packed key bytes), whole values
  /// (layout.maps[map_id].value_words words) merged by the map's rule (bytecode::merge_value:
  /// counts, sums, averages and buckets add, min/max keep the extreme; assigned values: any one,
  /// or the sum for a sharded map). Unordered.
  [[nodiscard]] std::vector<output::MapEntry> map_entries(uint32_t map_id);

  /// The value of map `map_id`'s entry for packed `key`, merged over all tables as map_entries
  /// merges it (`words`: layout.maps[map_id].value_words words); false when no table holds
  /// the key. Probes each table from the key's hash (the agent's hash_key), so a read costs
  /// about one probe chain per table, not a walk of every entry.
  bool lookup(uint32_t map_id, std::string_view key, std::vector<uint64_t>& words);

  /// Moves up to `max_events` committed printf events out of the ring, in ring order (each
  /// thread's events in the order it emitted them), appending them to `out`. Consumed ring
  /// bytes are zeroed and the tail advanced. Returns the number appended.
  size_t drain_events(std::vector<PrintfEvent>& out, size_t max_events = SIZE_MAX);

  /// Called once per event by visit_events with the event's packed arguments, exactly
  /// layout.format_sizes[format_id] bytes, valid only during the call (a private copy: the
  /// target cannot change them under the caller).
  using EventVisitor = void (*)(void* context, uint32_t format_id, std::span<const uint8_t> args);
  /// Called for a print()/clear()/zero() record (abi::kRecordMapCommand) with a map id below
  /// layout.map_count and a bytecode::map_command_word whose kind is valid (the limits index is
  /// the receiver's to check), in ring order with the printf events.
  using MapCommandVisitor = void (*)(void* context, uint32_t map_id, uint32_t command);
  /// drain_events without a copy per event: moves up to `max_events` committed events out of
  /// the ring, in the same order, handing each to `visit` (and map commands to `on_command`,
  /// which may be null: they are then dropped). Returns the number visited.
  size_t visit_events(EventVisitor visit, void* context, size_t max_events = SIZE_MAX,
                      MapCommandVisitor on_command = nullptr);

  /// clear(@m) / zero(@m) from a probe, applied to every table of the map in the region: live
  /// entries become tombstones, or keep their keys with every value word 0. Racing hits may
  /// land before or after, as with bpftrace's asynchronous clear().
  void reset_map(uint32_t map_id, bool zero_only);

  /// Calls `visit(id, pid, frames)` for each stack the agent recorded (ustack) since the last
  /// call, once each; entries whose id does not match their frames are skipped (the target
  /// wrote them, or a writer died mid-entry).
  template <class Visit> void visit_new_stacks(Visit&& visit);

  [[nodiscard]] abi::RegionCounters counters() const;
  /// Hits of probe `probe_id` over all threads (0 for an unknown id).
  [[nodiscard]] uint64_t probe_hits(uint32_t probe_id);
  [[nodiscard]] bool exit_requested() const;
  [[nodiscard]] const ReaderProblems& problems() const { return problems_; }
  [[nodiscard]] const RegionLayout& layout() const { return layout_; }

  /// A record left uncommitted at the ring's tail this long is skipped: its producer died inside
  /// the agent (a thread that never returned from a signal handler). A producer that is merely
  /// descheduled or stopped commits within microseconds of running again, so the default is
  /// generous; a producer that does come back after the skip writes into consumed bytes, which
  /// at worst garbles records the checks above then drop.
  void set_stuck_timeout(std::chrono::steady_clock::duration timeout) { stuck_timeout_ = timeout; }
  static constexpr std::chrono::seconds kDefaultStuckTimeout{2};

 private:
  RegionReader(std::span<uint8_t> region, RegionLayout layout)
      : region_(region), layout_(std::move(layout)) {}

  /// Offsets of the valid thread blocks (each once).
  std::vector<uint64_t> thread_blocks();
  /// Offsets of map `map_id`'s tables that lie inside the arena without overlapping.
  std::vector<uint64_t> map_tables(uint32_t map_id);
  void reset_ring(uint64_t tail, uint64_t head);

  std::span<uint8_t> region_;
  RegionLayout layout_;
  ReaderProblems problems_;
  std::chrono::steady_clock::duration stuck_timeout_ = kDefaultStuckTimeout;
  std::vector<uint8_t> scratch_; ///< the event being visited, copied out of the ring
  uint64_t stuck_tail_ = UINT64_MAX; ///< ring position of the uncommitted record seen last
  std::chrono::steady_clock::time_point stuck_since_;
  std::vector<bool> stacks_seen_; ///< per stack table entry: already visited
  uint64_t stacks_recorded_ = 0;  ///< the agent's count of recorded stacks at the last scan
};

template <class Visit> void RegionReader::visit_new_stacks(Visit&& visit) {
  const uint32_t capacity = layout_.stack_capacity;
  if (capacity == 0 || uint64_t{capacity} * sizeof(abi::StackEntry) > layout_.stacks.size) return;
  // Scanned only when the agent recorded a stack since (the count goes up after an entry is
  // ready: one recorded during a scan is found by the next).
  const uint64_t recorded = __atomic_load_n(
      &reinterpret_cast<const abi::RegionHeader*>(region_.data())->stacks_recorded,
      __ATOMIC_ACQUIRE);
  if (recorded == stacks_recorded_ && !stacks_seen_.empty()) return;
  stacks_recorded_ = recorded;
  stacks_seen_.resize(capacity);
  auto* entries = reinterpret_cast<abi::StackEntry*>(region_.data() + layout_.stacks.offset);
  abi::StackEntry copy;
  for (uint32_t i = 0; i < capacity; ++i) {
    if (stacks_seen_[i]) continue;
    const uint64_t id = __atomic_load_n(&entries[i].id, __ATOMIC_ACQUIRE);
    if (id == 0 || __atomic_load_n(&entries[i].ready, __ATOMIC_ACQUIRE) == 0) continue;
    std::memcpy(&copy, &entries[i], sizeof copy);
    stacks_seen_[i] = true;
    if (copy.id != id || copy.depth > abi::kMaxStackFrames ||
        abi::stack_id(copy.pid, copy.frames, copy.depth) != id) {
      continue;
    }
    visit(id, copy.pid, std::span<const uint64_t>(copy.frames, copy.depth));
  }
}

} // namespace dprobe::agent
