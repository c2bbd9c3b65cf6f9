// User stacks: the unwind tables dprobe derives from each module's DWARF call-frame information
// (.eh_frame), the walk that uses them, and the table of captured stacks. Shared by the agent
// (which walks on a hit, inside the target) and the controller (which walks for int3-ptrace hits
// through ptrace, and reads the captured stacks back). Freestanding: no libc, no std::.
//
// Why tables and not a copy of the stack unwound later (perf --call-graph dwarf): a stack must
// be a map key at hit time (`@[ustack] = count()`), so the agent has to know the frames then.
// The controller turns each module's CFI into one compact row per address range (CFA = rsp or
// rbp + offset, return address at CFA - 8, rbp saved at CFA + offset or unchanged), which the
// agent applies with a few fault-safe reads per frame: exact with and without frame pointers,
// including at a function's first instruction, where a frame-pointer walk loses the caller.
// Code without CFI rows (JIT code, hand-written assembly) falls back to the frame-pointer chain.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace dprobe::abi {

/// Frames a stack keeps at most: bpftrace's (the kernel's perf_event_max_stack default).
inline constexpr uint32_t kMaxStackFrames = 127;

/// UnwindRow::rule.
enum UnwindRule : uint8_t {
  kUnwindCfaRsp = 0,    ///< CFA = rsp + cfa_offset
  kUnwindCfaRbp = 1,    ///< CFA = rbp + cfa_offset
  kUnwindOutermost = 2, ///< the return address is undefined: the first frame (_start, clone)
  kUnwindNoInfo = 3,    ///< no usable CFI here: follow the frame pointer
  /// A signal trampoline (__restore_rt, an FDE with the 'S' augmentation): rsp is the kernel's
  /// ucontext_t, which holds the interrupted rip, rsp and rbp (kSignal* offsets below).
  kUnwindSignalFrame = 4,
};

/// Offsets from a signal trampoline's rsp (its ucontext_t) of the interrupted registers:
/// uc_mcontext.gregs at 40, REG_RBP 10, REG_RSP 15, REG_RIP 16 (x86-64 Linux).
inline constexpr uint64_t kSignalRbpOffset = 40 + 8 * 10;
inline constexpr uint64_t kSignalRspOffset = 40 + 8 * 15;
inline constexpr uint64_t kSignalRipOffset = 40 + 8 * 16;

/// The unwind rule from `pc` (a link-time address of the module) up to the next row's pc.
struct UnwindRow {
  uint32_t pc;
  int32_t cfa_offset;
  int16_t rbp_offset; ///< the caller's rbp is saved at CFA + rbp_offset; 0: rbp is unchanged
  uint8_t rule;       ///< UnwindRule
  uint8_t reserved;
};
static_assert(sizeof(UnwindRow) == 12, "unwind row layout");

/// One executable mapping and its rows: rows[first_row, first_row + row_count), sorted by pc.
struct UnwindModule {
  uint64_t start; ///< runtime address range [start, end)
  uint64_t end;
  uint64_t bias; ///< runtime address = link-time address + bias
  uint32_t first_row;
  uint32_t row_count;
};
static_assert(sizeof(UnwindModule) == 32, "unwind module layout");

/// The tables a walk reads. Modules are searched newest first (a library mapped where an
/// unmapped one was shadows it).
struct UnwindView {
  const UnwindModule* modules;
  uint32_t module_count;
  const UnwindRow* rows;
  uint32_t row_capacity; ///< rows past this are never read, whatever a module claims
};

/// The registers a walk starts from: the probed instruction and the stack at it.
struct StackStart {
  uint64_t rip;
  uint64_t rsp;
  uint64_t rbp;
};

/// The row covering runtime address `pc`, or null.
inline const UnwindRow* find_unwind_row(const UnwindView& view, uint64_t pc) {
  for (uint32_t m = view.module_count; m > 0; --m) {
    const UnwindModule& module = view.modules[m - 1];
    if (pc < module.start || pc >= module.end) continue;
    if (module.row_count == 0 || module.first_row > view.row_capacity ||
        module.row_count > view.row_capacity - module.first_row) {
      return nullptr;
    }
    const uint64_t vaddr = pc - module.bias;
    if (vaddr > 0xffffffffull) return nullptr;
    const UnwindRow* rows = view.rows + module.first_row;
    if (rows[0].pc > vaddr) return nullptr;
    // The last row whose pc <= vaddr.
    uint32_t lo = 0, hi = module.row_count;
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (rows[mid].pc <= vaddr) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return &rows[lo];
  }
  return nullptr;
}

/// Walks the stack from `start`: frames[0] is start.rip, then each caller's return address,
/// up to `max_frames`; the first `skip` of those (at most kMaxStackFrames) are left out (not
/// counted in max_frames). `read(address, &word)` reads 8 bytes of the target, false on a fault.
/// Bounded: at most skip + max_frames steps; every step must move up the stack (a signal frame
/// may move anywhere else: the handler may run on an alternate stack), and the walk stops at
/// the first fault, a zero return address, an outermost frame, or max_frames. Returns the
/// number of frames.
template <class ReadWord>
uint32_t walk_stack(const UnwindView& view, StackStart start, ReadWord&& read, uint64_t* frames,
                    uint32_t max_frames, uint32_t skip = 0) {
  if (max_frames > kMaxStackFrames) max_frames = kMaxStackFrames;
  if (skip > kMaxStackFrames) skip = kMaxStackFrames;
  uint64_t pc = start.rip;
  uint64_t rsp = start.rsp;
  uint64_t rbp = start.rbp;
  // pc is the instruction to look up (the probed one, or the one a signal interrupted) rather
  // than a return address.
  bool exact_pc = true;
  uint32_t n = 0;
  for (uint32_t step = 0; n < max_frames && pc != 0 && step < skip + max_frames; ++step) {
    if (step >= skip) frames[n++] = pc;
    if (n == max_frames) break;
    // A return address points after its call: look up the call itself (it may be the last
    // instruction of a noreturn function's caller, whose rows end right there).
    const UnwindRow* row = find_unwind_row(view, exact_pc ? pc : pc - 1);
    exact_pc = false;
    uint64_t return_address = 0;
    uint64_t caller_rsp = 0;
    if (row != nullptr && row->rule == kUnwindOutermost) break;
    if (row != nullptr && row->rule == kUnwindSignalFrame) {
      uint64_t interrupted_rsp = 0, interrupted_rbp = 0;
      if (!read(rsp + kSignalRipOffset, &return_address) ||
          !read(rsp + kSignalRspOffset, &interrupted_rsp) ||
          !read(rsp + kSignalRbpOffset, &interrupted_rbp) || interrupted_rsp == rsp) {
        break;
      }
      rsp = interrupted_rsp;
      rbp = interrupted_rbp;
      pc = return_address;
      exact_pc = true;
      continue;
    }
    if (row != nullptr && (row->rule == kUnwindCfaRsp || row->rule == kUnwindCfaRbp)) {
      const uint64_t cfa =
          (row->rule == kUnwindCfaRsp ? rsp : rbp) + static_cast<int64_t>(row->cfa_offset);
      if (!read(cfa - 8, &return_address)) break;
      if (row->rbp_offset != 0 && !read(cfa + static_cast<int64_t>(row->rbp_offset), &rbp)) break;
      caller_rsp = cfa;
    } else {
      // The frame-pointer chain: [rbp] is the caller's rbp, [rbp + 8] the return address.
      if (rbp < rsp || rbp == 0) break;
      uint64_t caller_rbp = 0;
      if (!read(rbp + 8, &return_address) || !read(rbp, &caller_rbp)) break;
      caller_rsp = rbp + 16;
      rbp = caller_rbp;
    }
    if (caller_rsp <= rsp) break;
    rsp = caller_rsp;
    pc = return_address;
  }
  return n;
}

/// A captured stack's id: a hash of the process, the depth and the frames, never 0. Identical
/// stacks of one process get one id wherever they are captured (agent or controller), so ids
/// are map keys as they are, and dprobe resolves them from whichever table holds the frames.
inline uint64_t stack_id(uint32_t pid, const uint64_t* frames, uint32_t depth) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ pid ^ (static_cast<uint64_t>(depth) << 32);
  for (uint32_t i = 0; i < depth; ++i) {
    h = (h ^ frames[i]) * 0xff51afd7ed558ccdull;
    h ^= h >> 31;
  }
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  return h | 1;
}

/// One captured stack in the region's stack table (open addressing by id, linear probing).
/// The agent claims `id` with compare-and-swap, writes the rest, then sets `ready` (release).
struct StackEntry {
  uint64_t id; ///< 0: free
  uint32_t ready;
  uint32_t pid;
  uint32_t depth; ///< <= kMaxStackFrames
  uint32_t reserved;
  uint64_t frames[kMaxStackFrames];
};
static_assert(sizeof(StackEntry) == 24 + 8 * kMaxStackFrames, "stack entry layout");

/// Slots probed for an id before the agent gives up (the table is full): counted in
/// RegionCounters::dropped_stacks, the stack prints as unknown.
inline constexpr uint32_t kStackProbeLimit = 64;

} // namespace dprobe::abi
