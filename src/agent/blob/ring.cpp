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

namespace {

/// Reserves, fills and commits one record whose header meta is `id | flags | kRecordCommitted`.
bool emit_record(RegionHeader* h, uint32_t id, uint32_t flags, const uint8_t* args, uint32_t size) {
  const uint32_t format_id = id;
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
  // Whole words where possible (records are 8-byte aligned; args may not be).
  uint32_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, args + i, 8);
    *reinterpret_cast<uint64_t*>(payload + i) = word;
  }
  for (; i < size; ++i)
    payload[i] = args[i];
  store_release(header, record_header(static_cast<uint32_t>(need),
                                      format_id | flags | abi::kRecordCommitted));
  return true;
}

} // namespace

bool ring_emit(RegionHeader* h, uint32_t format_id, const uint8_t* args, uint32_t size) {
  return emit_record(h, format_id, 0, args, size);
}

bool ring_emit_map_command(RegionHeader* h, uint32_t map_id, uint32_t command) {
  const uint64_t payload = command;
  return emit_record(h, map_id, abi::kRecordMapCommand, reinterpret_cast<const uint8_t*>(&payload),
                     sizeof payload);
}

bool ring_printf_fast(RegionHeader* h, const abi::ProbeEntry& probe,
                      const abi::SavedRegisters& regs) {
  // The shape `printf(fmt, argA, argB, ...)` and nothing else: one program without context
  // needs, made of (ldctx r, argN; st64 frame[off + 8i], r) pairs, printf of exactly those
  // bytes, ret. The VM would emit the same record; checking the shape costs a few loads.
  constexpr uint32_t kMaxArgs = 6;
  if (probe.program_count != 1 || probe.context_flags != 0) return false;
  const uint32_t index = probe.programs[0];
  if (index >= h->program_count) return false;
  const abi::ProgramDesc& desc = area<const abi::ProgramDesc>(h, h->programs)[index];
  if (desc.length < 3 || desc.length > 2 * kMaxArgs + 2 || desc.length % 2 != 0) return false;
  // ProgramDescs were checked against code_length by ensure_prepared.
  const bytecode::Insn* code = area<const bytecode::Insn>(h, h->code) + desc.code_offset;
  const uint32_t args = (desc.length - 2) / 2;
  const bytecode::Insn& printf = code[2 * args];
  if (printf.op != bytecode::Op::Printf || code[2 * args + 1].op != bytecode::Op::Ret) return false;
  const uint64_t offset = printf.imm & 0xffffffffu;
  if ((printf.imm >> 32) != 8ull * args || printf.aux >= h->format_count) return false;
  const auto* formats = area<const bytecode::VmFormatInfo>(h, h->vm_formats);
  if (formats[printf.aux].args_size != 8 * args) return false;
  uint64_t values[kMaxArgs];
  for (uint32_t i = 0; i < args; ++i) {
    const bytecode::Insn& load = code[2 * i];
    const bytecode::Insn& store = code[2 * i + 1];
    if (load.op != bytecode::Op::LoadCtx || store.op != bytecode::Op::Store64 ||
        load.aux > static_cast<uint32_t>(bytecode::CtxField::Arg5) || store.a != load.dst ||
        store.imm != offset + 8ull * i) {
      return false;
    }
    values[i] = saved_argument(regs, load.aux);
  }
  ring_emit(h, printf.aux, reinterpret_cast<const uint8_t*>(values), 8 * args);
  return true;
}

} // namespace dprobe::agent::blob
