// Per-thread state: the thread table (keyed by fs base), lazily allocated thread blocks and
// per-level VmState scratch, the scratch pool of the shared path, and cached thread identity.
//
// Lazily created things are published with compare-and-swap even though only one thread uses
// a slot: a signal handler nesting on that thread may create the same thing between our
// allocation and our store, and the CAS makes both agree on one of them (the other allocation
// is leaked; the arena never reuses memory, so nothing else sees it).
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"
#include "agent/blob/keys.h"
#include "agent/blob/syscalls.h"

namespace dprobe::agent::blob {

namespace {

/// A thread whose slot is taken by hash collisions this far along gives up on a slot (and runs
/// on the shared path): keeps a full table from costing a long scan per hit.
constexpr uint32_t kMaxSlotProbes = 32;

/// Publishes `fresh` into *slot unless a nested call got there first; returns the winner.
uint64_t publish_offset(uint64_t* slot, uint64_t fresh) {
  uint64_t expected = 0;
  if (compare_swap(slot, &expected, fresh)) return fresh;
  return expected;
}

void copy_bytes(char* dst, const char* src, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    dst[i] = src[i];
}

/// The CPU this thread runs on now (getcpu; the vDSO's would need its address from dprobe).
uint64_t current_cpu() {
  unsigned cpu = 0;
  syscall6(kSysGetcpu, reinterpret_cast<long>(&cpu), 0, 0, 0, 0, 0);
  return cpu;
}

} // namespace

uint64_t arena_alloc(RegionHeader* h, uint64_t size) {
  constexpr uint64_t kAlign = abi::kArenaAlign;
  size = (size + kAlign - 1) & ~(kAlign - 1);
  const uint64_t base = h->arena.offset;
  uint64_t used = load_relaxed(&h->arena_used);
  // A CAS loop rather than fetch_add: a refused large request must not use up the space
  // smaller requests (a new thread's block) still fit in.
  for (;;) {
    // Aligned from the region's base, not the arena's: two threads' blocks and tables never
    // share a cache line pair (the adjacent-line prefetcher moves lines in 128-byte pairs).
    const uint64_t start = ((base + used + kAlign - 1) & ~(kAlign - 1)) - base;
    if (used > h->arena.size || start > h->arena.size || size > h->arena.size - start) {
      count_event(&h->counters.arena_exhausted);
      return 0;
    }
    if (compare_swap(&h->arena_used, &used, start + size)) return base + start;
  }
}

abi::ThreadSlot* claim_thread_slot(RegionHeader* h, uint64_t thread) {
  const uint32_t count = h->thread_slot_count;
  if (count == 0) return nullptr;
  auto* slots = area<abi::ThreadSlot>(h, h->thread_slots);
  const uint32_t mask = count - 1;
  uint32_t i = thread_slot_index(thread, count);
  for (uint32_t n = 0; n < kMaxSlotProbes && n < count; ++n, i = (i + 1) & mask) {
    abi::ThreadSlot* slot = &slots[i];
    uint64_t key = load_relaxed(&slot->key);
    if (key == thread) return slot;
    if (key == 0) {
      if (compare_swap(&slot->key, &key, thread) || key == thread) return slot;
    }
  }
  return nullptr;
}

uint64_t* make_thread_block(RegionHeader* h, abi::ThreadSlot* slot) {
  const uint64_t fresh = arena_alloc(h, abi::thread_block_size(h->probe_capacity, h->map_count));
  if (fresh == 0) return nullptr;
  return at_offset<uint64_t>(h, publish_offset(&slot->block, fresh));
}

bytecode::VmState* make_level_state(RegionHeader* h, abi::ThreadSlot* slot, uint32_t level) {
  const uint64_t fresh = arena_alloc(h, sizeof(bytecode::VmState));
  if (fresh == 0) return nullptr;
  return at_offset<bytecode::VmState>(h, publish_offset(&slot->levels[level], fresh));
}

abi::ScratchState* claim_scratch(RegionHeader* h) {
  auto* pool = area<abi::ScratchState>(h, h->scratch);
  for (uint32_t i = 0; i < h->scratch_count; ++i) {
    if (load_relaxed(&pool[i].busy) == 0 && exchange_acquire(&pool[i].busy, uint64_t{1}) == 0) {
      return &pool[i];
    }
  }
  return nullptr;
}

void release_scratch(abi::ScratchState* scratch) {
  store_release(&scratch->busy, uint64_t{0});
}

void fill_identity(abi::ThreadSlot* slot, uint32_t flags, bytecode::VmContext& context) {
  if (slot == nullptr) {
    // Shared path: no cache, so a system call per hit, but only for what the programs read.
    if (flags & abi::kNeedsPid) context.pid = static_cast<uint64_t>(syscall0(kSysGetpid));
    if (flags & abi::kNeedsTid) context.tid = static_cast<uint64_t>(syscall0(kSysGettid));
    if (flags & abi::kNeedsComm) {
      char name[16] = {};
      syscall6(kSysPrctl, kPrGetName, reinterpret_cast<long>(name), 0, 0, 0, 0);
      name[15] = 0;
      copy_bytes(context.comm, name, 16);
    }
    if (flags & abi::kNeedsIds) {
      context.uid = static_cast<uint32_t>(syscall0(kSysGetuid));
      context.gid = static_cast<uint32_t>(syscall0(kSysGetgid));
    }
    if (flags & abi::kNeedsCpu) context.cpu = current_cpu();
    return;
  }
  uint32_t have = load_relaxed(&slot->have);
  if (flags & (abi::kNeedsPid | abi::kNeedsTid | abi::kNeedsComm | abi::kNeedsIds)) {
    // Nested calls may fill the same fields meanwhile; they write the same values.
    if ((flags & abi::kNeedsTid) && !(have & abi::kHaveTid)) {
      store_relaxed(&slot->tid, static_cast<uint32_t>(syscall0(kSysGettid)));
      have |= abi::kHaveTid;
    }
    if ((flags & abi::kNeedsPid) && !(have & abi::kHavePid)) {
      store_relaxed(&slot->pid, static_cast<uint32_t>(syscall0(kSysGetpid)));
      have |= abi::kHavePid;
    }
    if ((flags & abi::kNeedsComm) && !(have & abi::kHaveComm)) {
      char name[16] = {};
      syscall6(kSysPrctl, kPrGetName, reinterpret_cast<long>(name), 0, 0, 0, 0);
      name[15] = 0;
      copy_bytes(slot->comm, name, 16);
      have |= abi::kHaveComm;
    }
    if ((flags & abi::kNeedsIds) && !(have & abi::kHaveIds)) {
      store_relaxed(&slot->uid, static_cast<uint32_t>(syscall0(kSysGetuid)));
      store_relaxed(&slot->gid, static_cast<uint32_t>(syscall0(kSysGetgid)));
      have |= abi::kHaveIds;
    }
    store_relaxed(&slot->have, have);
  }
  if (flags & abi::kNeedsIds) {
    context.uid = slot->uid;
    context.gid = slot->gid;
  }
  // Not cached: the thread may migrate between any two hits.
  if (flags & abi::kNeedsCpu) context.cpu = current_cpu();
  if (flags & abi::kNeedsPid) context.pid = slot->pid;
  if (flags & abi::kNeedsTid) context.tid = slot->tid;
  if (flags & abi::kNeedsComm) copy_bytes(context.comm, slot->comm, 16);
}

uint64_t monotonic_ns(RegionHeader* h) {
  TimeSpec ts{0, 0};
  const uint64_t vdso = load_relaxed(&h->clock_gettime);
  if (vdso != 0) {
    using ClockGettime = int (*)(long, TimeSpec*);
    reinterpret_cast<ClockGettime>(vdso)(kClockMonotonic, &ts);
  } else {
    syscall6(kSysClockGettime, kClockMonotonic, reinterpret_cast<long>(&ts), 0, 0, 0, 0);
  }
  return static_cast<uint64_t>(ts.seconds) * 1000000000ull + static_cast<uint64_t>(ts.nanoseconds);
}

} // namespace dprobe::agent::blob
