// Internal interfaces of the agent runtime (the code that runs inside the target). Freestanding:
// no libc, no allocation, no locks; every function here may run in a signal handler that
// interrupted another call of the same function on the same thread.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "abi/region.h"
#include "abi/saved_registers.h"
#include "abi/unwind.h"
#include "agent/blob/keys.h"
#include "bytecode/vm.h"

namespace dprobe::agent::blob {

using abi::RegionHeader;

inline uint8_t* region_base(RegionHeader* h) {
  return reinterpret_cast<uint8_t*>(h);
}

template <class T> inline T* area(RegionHeader* h, const abi::AreaRef& ref) {
  return reinterpret_cast<T*>(region_base(h) + ref.offset);
}

template <class T> inline T* at_offset(RegionHeader* h, uint64_t offset) {
  return reinterpret_cast<T*>(region_base(h) + offset);
}

/// Rare events: an atomic add on a shared counter.
void count_event(uint64_t* counter);

// --- prepare.cpp
/// Validates the region once and builds the VmModule the programs run against. False when the
/// region is unusable (and then it stays so: module_state is kModuleInvalid).
bool ensure_prepared(RegionHeader* h);
/// The prepared module; only after ensure_prepared returned true.
const bytecode::VmModule& prepared_module(RegionHeader* h);

// --- threads.cpp
/// Offset of `size` fresh (zeroed) arena bytes, kArenaAlign-aligned; 0 when the arena is full.
uint64_t arena_alloc(RegionHeader* h, uint64_t size);
abi::ThreadSlot* claim_thread_slot(RegionHeader* h, uint64_t key);
uint64_t* make_thread_block(RegionHeader* h, abi::ThreadSlot* slot);
bytecode::VmState* make_level_state(RegionHeader* h, abi::ThreadSlot* slot, uint32_t level);

/// The calling thread's slot (claimed on its first hit), null when the table has no room.
inline abi::ThreadSlot* find_thread_slot(RegionHeader* h, uint64_t key) {
  // The common case inline: the slot the hash names is already ours.
  const uint32_t count = h->thread_slot_count;
  abi::ThreadSlot* slot =
      area<abi::ThreadSlot>(h, h->thread_slots) + thread_slot_index(key, count);
  if (__builtin_expect(count != 0 && __atomic_load_n(&slot->key, __ATOMIC_RELAXED) == key, 1)) {
    return slot;
  }
  return claim_thread_slot(h, key);
}
/// The slot's thread block (allocated on first use), null when the arena is full.
inline uint64_t* thread_block(RegionHeader* h, abi::ThreadSlot* slot) {
  const uint64_t offset = __atomic_load_n(&slot->block, __ATOMIC_RELAXED);
  if (__builtin_expect(offset != 0, 1)) return at_offset<uint64_t>(h, offset);
  return make_thread_block(h, slot);
}
/// Scratch for nesting level `level` of the slot's thread, null when the arena is full.
inline bytecode::VmState* level_state(RegionHeader* h, abi::ThreadSlot* slot, uint32_t level) {
  const uint64_t offset = __atomic_load_n(&slot->levels[level], __ATOMIC_RELAXED);
  if (__builtin_expect(offset != 0, 1)) return at_offset<bytecode::VmState>(h, offset);
  return make_level_state(h, slot, level);
}
/// Scratch for a hit without a thread slot: released with release_scratch; null when all busy.
abi::ScratchState* claim_scratch(RegionHeader* h);
void release_scratch(abi::ScratchState* scratch);
/// Fills pid/tid/comm of `context` per kNeeds* flags, from the slot's cache when it has one.
void fill_identity(abi::ThreadSlot* slot, uint32_t flags, bytecode::VmContext& context);
/// CLOCK_MONOTONIC in nanoseconds (the vDSO's clock_gettime when the controller gave it).
uint64_t monotonic_ns(RegionHeader* h);

// --- maps.cpp
/// Runs one update on map `map_id` for a hit; `block` is the thread block, null on the shared
/// path. False when the update was dropped (counted).
bool map_update(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size, uint32_t op, uint64_t value);
bool map_lookup(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size, uint64_t* value);
/// clear(@m) (zero_only false) or zero(@m) on every table of the map: the shared one and each
/// thread's.
void map_reset(RegionHeader* h, uint32_t map_id, bool zero_only);
void map_delete(RegionHeader* h, uint64_t* block, uint32_t map_id, const uint8_t* key,
                uint32_t key_size);

// --- ring.cpp
/// Appends a printf event to the ring; false when it was dropped (counted).
bool ring_emit(RegionHeader* h, uint32_t format_id, const uint8_t* args, uint32_t size);
/// print(@m), clear(@m), zero(@m) from a probe: a kRecordMapCommand record dprobe acts on.
bool ring_emit_map_command(RegionHeader* h, uint32_t map_id, uint32_t command);
/// A probe whose only program is `printf(fmt, argN, ...)` with argument registers only: emits
/// the event the VM would, without running it. False (nothing done) for any other program.
bool ring_printf_fast(RegionHeader* h, const abi::ProbeEntry& probe,
                      const abi::SavedRegisters& regs);

// --- stacks.cpp
/// ustack: walks the stack from `start` (at most max_frames frames), records it in the stack
/// table and returns its id (abi::stack_id).
/// `scratch` (may be null): memory the walk may use to read the stack ahead and keep the frames
/// in (else they take about 1.3 KB of the probed thread's stack).
uint64_t capture_stack(RegionHeader* h, uint32_t pid, const abi::StackStart& start,
                       uint32_t max_frames, uint32_t skip, uint8_t* scratch,
                       uint64_t scratch_size);

// --- dispatch.cpp
/// One probe hit, from a trampoline or the SIGTRAP handler.
void dispatch_hit(RegionHeader* h, uint32_t probe_id, const abi::SavedRegisters& regs);

/// What the SIGTRAP handler passes to dispatch_hit: the registers, then the interrupted rsp
/// (a trampoline's frame has no rsp slot: there it is found from the frame's own address).
/// fill_context tells the two apart by the probe's resume_address (set only for int3 sites).
struct TrapRegisters {
  abi::SavedRegisters regs; ///< first: dispatch_hit sees a SavedRegisters
  uint64_t rsp;
};

/// Integer argument n (0..5) of the SysV calling convention, from the trampoline's frame.
inline uint64_t saved_argument(const abi::SavedRegisters& regs, uint32_t n) {
  switch (n) {
  case 0:
    return regs.rdi;
  case 1:
    return regs.rsi;
  case 2:
    return regs.rdx;
  case 3:
    return regs.rcx;
  case 4:
    return regs.r8;
  default:
    return regs.r9;
  }
}

} // namespace dprobe::agent::blob

extern "C" {
/// The entry points named in the blob header.
void agent_dispatch(dprobe::abi::RegionHeader* region, uint32_t probe_id,
                    dprobe::abi::SavedRegisters* regs);
void agent_sigtrap(int signal, void* info, void* ucontext);
void agent_sigreturn();
}
