// The printf ring, producer side. Reservation is a CAS on head (bounded retries: under
// contention someone always wins, and a producer that keeps losing drops its event rather than
// wait). A record is published by one release store of its header with kRecordCommitted; the
// consumer stops at the first record that is not committed yet, so records come out in
// reservation order, and each thread's events in program order.
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"

namespace dprobe::agent::blob {

namespace {

constexpr uint32_t kReserveAttempts = 64;

inline uint64_t record_header(uint32_t size, uint32_t meta) {
  return static_cast<uint64_t>(size) | (static_cast<uint64_t>(meta) << 32);
}

} // namespace

bool ring_emit(RegionHeader* h, uint32_t format_id, const uint8_t* args, uint32_t size) {
  auto* ring = area<abi::RingHeader>(h, h->ring);
  uint8_t* data = reinterpret_cast<uint8_t*>(ring + 1);
  const uint64_t capacity = h->ring.size - sizeof(abi::RingHeader);
  const uint64_t need = sizeof(abi::RecordHeader) + ((static_cast<uint64_t>(size) + 7) & ~7ull);
  if (need > capacity || format_id > abi::kRecordFormatMask) {
    count_event(&h->counters.dropped_events);
    return false;
  }
  uint64_t head = 0;
  uint64_t pad = 0;
  bool reserved = false;
  for (uint32_t attempt = 0; attempt < kReserveAttempts; ++attempt) {
    // tail first, then head: the consumer never moves tail past head, so head - tail cannot
    // underflow (a head older than the tail would make a ring with room look full).
    const uint64_t tail = load_acquire(&ring->tail);
    head = load_relaxed(&ring->head);
    const uint64_t to_end = capacity - (head & (capacity - 1));
    pad = need > to_end ? to_end : 0;
    const uint64_t used = head - tail;
    if (used > capacity || pad + need > capacity - used) break; // full (or a corrupt tail)
    if (compare_swap(&ring->head, &head, head + pad + need)) {
      reserved = true;
      break;
    }
  }
  if (!reserved) {
    count_event(&h->counters.dropped_events);
    return false;
  }
  if (pad != 0) {
    store_release(
        reinterpret_cast<uint64_t*>(data + (head & (capacity - 1))),
        record_header(static_cast<uint32_t>(pad), abi::kRecordPadding | abi::kRecordCommitted));
  }
  uint8_t* record = data + ((head + pad) & (capacity - 1));
  auto* header = reinterpret_cast<uint64_t*>(record);
  // The size first, so that a consumer stuck behind a record whose producer never finished
  // (a thread that died in a signal handler) can skip it.
  store_relaxed(header, record_header(static_cast<uint32_t>(need), 0));
  uint8_t* payload = record + sizeof(abi::RecordHeader);
  for (uint32_t i = 0; i < size; ++i)
    payload[i] = args[i];
  store_release(header,
                record_header(static_cast<uint32_t>(need), format_id | abi::kRecordCommitted));
  return true;
}

} // namespace dprobe::agent::blob
