// ustack inside the target: walk the hit's stack with the unwind tables dprobe published
// (abi/unwind.h), then record the frames once in the region's stack table, keyed by the stack's
// id. Fault-safe: target memory is read with process_vm_readv, never dereferenced, and the walk
// is bounded by abi::walk_stack's rules.
#include "abi/unwind.h"
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"
#include "agent/blob/syscalls.h"

namespace dprobe::agent::blob {

namespace {

static_assert(abi::kMaxStackFrames == bytecode::kMaxStackFrames, "one frame limit");

/// Stack bytes read ahead with one system call: most frames are near each other, so a walk
/// costs one or two reads rather than two per frame. A read covers the rest of the address's
/// page and, as a second iovec, as much of the next page as the buffer holds: process_vm_readv
/// stops at the first iovec it cannot read whole, so an unmapped next page costs nothing.
struct StackWindow {
  uint64_t pid;
  uint8_t* bytes;
  uint64_t capacity; ///< bytes of `bytes`, at least 8
  uint64_t base = 0;
  uint64_t valid = 0; ///< bytes of `bytes` holding target memory from `base`

  bool read(uint64_t address, uint64_t* word) {
    if (address >= base && address - base + 8 <= valid) {
      __builtin_memcpy(word, bytes + (address - base), 8);
      return true;
    }
    const uint64_t page_left = bytecode::kPageSize - (address & (bytecode::kPageSize - 1));
    const uint64_t first = page_left < capacity ? page_left : capacity;
    const uint64_t second = capacity - first;
    IoVec local{bytes, first + second};
    IoVec remote[2] = {{reinterpret_cast<void*>(address), first},
                       {reinterpret_cast<void*>(address + first), second}};
    valid = 0;
    const long n = syscall6(kSysProcessVmReadv, static_cast<long>(pid),
                            reinterpret_cast<long>(&local), 1, reinterpret_cast<long>(remote),
                            second != 0 ? 2 : 1, 0);
    if (n < 8) return false;
    base = address;
    valid = static_cast<uint64_t>(n);
    __builtin_memcpy(word, bytes, 8);
    return true;
  }
};

/// Records the stack in the table (once per id); false when the table has no room.
bool record_stack(RegionHeader* h, uint64_t id, uint32_t pid, const uint64_t* frames,
                  uint32_t depth) {
  const uint32_t capacity = h->stack_capacity;
  if (capacity == 0 || (capacity & (capacity - 1)) != 0 ||
      h->stacks.offset + uint64_t{capacity} * sizeof(abi::StackEntry) > h->size) {
    return false;
  }
  auto* entries = area<abi::StackEntry>(h, h->stacks);
  for (uint32_t n = 0; n < abi::kStackProbeLimit && n < capacity; ++n) {
    abi::StackEntry& e = entries[(id + n) & (capacity - 1)];
    uint64_t current = load_acquire(&e.id);
    if (current == 0) {
      uint64_t expected = 0;
      if (compare_swap(&e.id, &expected, id)) {
        e.pid = pid;
        e.depth = depth;
        for (uint32_t i = 0; i < depth; ++i)
          e.frames[i] = frames[i];
        store_release(&e.ready, uint32_t{1});
        fetch_add(&h->stacks_recorded, uint64_t{1});
        return true;
      }
      current = expected;
    }
    // The same id is the same stack (a 64-bit hash of it); another thread may still be writing
    // it, and dprobe reads it only once it is ready.
    if (current == id) return true;
  }
  return false;
}

/// The walk and the record, with the read-ahead window and the frames where the caller put them.
inline uint64_t walk_and_record(RegionHeader* h, uint32_t pid, const abi::StackStart& start,
                                uint32_t max_frames, uint32_t skip, StackWindow window,
                                uint64_t* frames) {
  uint32_t module_count = load_acquire(&h->unwind_module_count);
  if (module_count > h->unwind_module_capacity) module_count = h->unwind_module_capacity;
  const abi::UnwindView view{area<const abi::UnwindModule>(h, h->unwind_modules), module_count,
                             area<const abi::UnwindRow>(h, h->unwind_rows),
                             h->unwind_row_capacity};
  const uint32_t depth = abi::walk_stack(
      view, start, [&window](uint64_t address, uint64_t* word) { return window.read(address, word); },
      frames, max_frames, skip);
  const uint64_t id = abi::stack_id(pid, frames, depth);
  if (!record_stack(h, id, pid, frames, depth)) count_event(&h->counters.dropped_stacks);
  return id;
}

/// Without room in the VM frame: a small window and the frames on the target's stack (about
/// 1.3 KB). A function of its own, so that the common path does not reserve them: the agent
/// runs on the probed thread's stack, which may be nearly used up.
__attribute__((noinline)) uint64_t capture_on_stack(RegionHeader* h, uint32_t pid,
                                                    const abi::StackStart& start,
                                                    uint32_t max_frames, uint32_t skip) {
  uint8_t small[256];
  uint64_t frames[abi::kMaxStackFrames];
  return walk_and_record(h, pid, start, max_frames, skip, StackWindow{pid, small, sizeof small},
                         frames);
}

/// Read-ahead window bytes in the VM frame's unused tail. Bigger windows measured no faster:
/// copying costs what calls save.
constexpr uint64_t kWindowBytes = 1024;
/// Scratch the window and the frames (8-byte aligned after it) need.
constexpr uint64_t kScratchNeeded = kWindowBytes + 7 + sizeof(uint64_t) * abi::kMaxStackFrames;

} // namespace

uint64_t capture_stack(RegionHeader* h, uint32_t pid, const abi::StackStart& start,
                       uint32_t max_frames, uint32_t skip, uint8_t* scratch,
                       uint64_t scratch_size) {
  if (scratch == nullptr || scratch_size < kScratchNeeded) {
    return capture_on_stack(h, pid, start, max_frames, skip);
  }
  uint8_t* frames = scratch + kWindowBytes;
  frames += (8 - (reinterpret_cast<uint64_t>(frames) & 7)) & 7;
  return walk_and_record(h, pid, start, max_frames, skip, StackWindow{pid, scratch, kWindowBytes},
                         reinterpret_cast<uint64_t*>(frames));
}

} // namespace dprobe::agent::blob
