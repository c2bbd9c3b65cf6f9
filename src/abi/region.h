// The memory region shared by the agent (inside the target) and dprobe: a memfd mapped in both.
// Freestanding: only <stdint.h>/<stddef.h>; plain structs at fixed offsets, the same on both
// sides (static_asserts pin the layout).
//
// Who writes what:
//   controller, before `enabled` is set: everything but the agent-written fields below;
//   controller, later: `enabled`, `cpid`, ProbeEntry::enabled, ThreadSlot::have (to forget a thread),
//                      the ring's tail and the ring bytes it consumed (zeroed), and the state
//                      and value words of live map entries for a clear()/zero() that BEGIN,
//                      END or an interval probe runs in dprobe;
//   agent: module_state, agent_private, stacks_recorded, string_views, exit_requested,
//          counters, arena_used, MapDesc::shared_table, ProbeEntry::shared_hits, thread slots,
//          scratch busy words, the arena, the ring's head and records.
// Trust: the agent checks every offset once (module_state) and every index it uses on a hit,
// but trusts a region that passed its checks. The controller trusts NOTHING it reads back here:
// the target can write any byte (DESIGN.md, invariant 8).
//
// Offsets are bytes from the region's base (its RegionHeader), so the image is position
// independent; every area starts on a kAreaAlign boundary.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace dprobe::abi {

/// "DPRBREG1" little-endian.
inline constexpr uint64_t kRegionMagic = 0x3147455242525044ull;
inline constexpr uint32_t kRegionVersion = 1;
inline constexpr uint64_t kAreaAlign = 64;
/// Alignment of every arena allocation (thread blocks, map tables, VmStates), from the region's
/// base: memory one thread writes on every hit never shares a 128-byte line pair with another's.
inline constexpr uint64_t kArenaAlign = 128;
/// The header sits alone in the first page.
inline constexpr uint64_t kHeaderAreaSize = 4096;

/// Feature flags (RegionHeader::features), set by the controller. A thread is identified by its
/// fs base (its TLS block); how the agent reads it decides the cost of every hit.
inline constexpr uint32_t kFeatureFsGsBase = 1u << 0; ///< rdfsbase usable (AT_HWCAP2 bit 1)
/// Every thread that can hit a probe follows the x86-64 TLS ABI: its fs base is not 0 and the
/// first word there is the fs base itself (glibc, musl). The agent then reads the identity with
/// `mov %fs:0`, a plain load, instead of rdfsbase (about 8 ns of latency on some AMD parts).
/// The controller sets it only after checking every thread (fs_base from its registers, the word
/// at fs_base from its memory), never while a thread may still run before its TLS is set up
/// (a launched static binary's first instructions): there the load would fault.
inline constexpr uint32_t kFeatureTlsSelfPointer = 1u << 1;
/// With kFeatureTlsSelfPointer: the C library keeps the thread's kernel tid as a 32-bit word at
/// fs_base + RegionHeader::tls_tid_offset (glibc: struct pthread's `tid`, updated in a fork
/// child before fork returns), and every fs base is 64-byte aligned below 2^47. The slot key
/// then names the thread, not only its TLS block (thread_key): a forked child's thread, which
/// has its parent's fs base, and a thread reusing an exited thread's TLS get slots of their own,
/// so children count into the shared region without racing their parent, with their own pid.
inline constexpr uint32_t kFeatureTlsTid = 1u << 2;
/// glibc's offsetof(struct pthread, tid) on x86-64; the controller checks it on every thread.
inline constexpr uint32_t kGlibcTlsTidOffset = 0x2d0;

/// A thread slot's key: the fs base alone, or with kFeatureTlsTid the fs base (64-byte aligned,
/// below 2^47: bits 6..46) with the tid (below 2^22, PID_MAX_LIMIT) rotated into bits 47..63
/// and 0..4, so that distinct (fs base, tid) pairs never share a key.
inline constexpr uint64_t thread_key(uint64_t fs_base, uint32_t tid) {
  const uint64_t t = tid;
  return fs_base ^ ((t << 47) | (t >> 17));
}
/// Whether `fs_base` is one thread_key keeps apart from every other (see kFeatureTlsTid).
inline constexpr bool tls_tid_key_usable(uint64_t fs_base, uint32_t tid) {
  return fs_base != 0 && (fs_base & 63) == 0 && (fs_base >> 47) == 0 && tid < (1u << 22);
}

/// Nesting levels per thread with their own scratch (a signal handler interrupting a probe may
/// hit another probe); deeper hits run on the scratch pool.
inline constexpr uint32_t kMaxNesting = 4;
/// Programs one probe site runs, in order (several probe blocks on one site share a patch).
inline constexpr uint32_t kMaxProgramsPerProbe = 8;
/// sizeof(bytecode::VmState): 64 registers of 8 bytes and an 8192-byte frame.
inline constexpr uint64_t kVmStateSize = 64 * 8 + 8192;

/// One area: [offset, offset + size) from the region base.
struct AreaRef {
  uint64_t offset;
  uint64_t size;
};

/// RegionHeader::module_state, agent-written.
enum ModuleState : uint32_t {
  kModuleUnprepared = 0, ///< the first hit validates the region and builds agent_private
  kModuleReady = 1,
  kModuleInvalid = 2, ///< validation failed: every hit is ignored (counted in invalid_region)
};

/// Event counters, agent-written with atomic adds (off the common hit path).
struct RegionCounters {
  uint64_t dropped_events;      ///< printf events lost: ring full or event too large
  uint64_t dropped_map_updates; ///< map full, or no arena left for a table
  uint64_t vm_errors;           ///< programs stopped by a VM fault
  uint64_t last_vm_status;      ///< bytecode::VmStatus of the latest fault
  uint64_t dropped_hits;        ///< hits whose programs did not run: no scratch state free
  uint64_t bad_probe_ids;       ///< dispatch called with probe_id >= probe_capacity
  uint64_t invalid_region;      ///< hits ignored because the region failed validation
  uint64_t arena_exhausted;     ///< arena allocations refused
  uint64_t fallback_hits;       ///< hits run on the shared, atomic path (no thread identity)
  uint64_t foreign_traps;       ///< SIGTRAPs at no probe address, passed to the old handler
  uint64_t dropped_stacks;      ///< ustack captures the stack table had no room for
  uint64_t reserved[5];
};
static_assert(sizeof(RegionCounters) == 128, "two cache lines");

/// Deferred insertion while dprobe runs free of the process (no ptrace, so that int3-boost hits
/// never stop in it): the dynamic loader's rendezvous breakpoint is a trap passthrough, and a
/// thread of the target process that reaches it waits here, in the agent's SIGTRAP handler,
/// until the controller has attached, armed the probes of what the loader just mapped (none of
/// its code has run yet), and detached again. The wait is bounded and ends at once when the
/// controller is gone, so a killed dprobe never hangs a dlopen.
struct LoaderHandshake {
  uint64_t address;        ///< controller: the breakpoint's address; 0 = nobody waits
  /// controller: r_debug.r_state in the target (0: unknown). Only a stop at RT_CONSISTENT (0)
  /// waits: at RT_ADD and RT_DELETE nothing has been mapped or unmapped yet.
  uint64_t state_address;
  uint32_t target_pid;     ///< controller: only this process waits (fork children go on)
  uint32_t controller_pid; ///< controller: its pid, checked with kill(pid, 0) while waiting
  uint32_t requests;       ///< agent: +1 per stop (futex word the controller may wait on)
  uint32_t answers;        ///< controller: `requests` it has served (futex word)
};

struct RegionHeader {
  // --- identity, controller-written once
  uint64_t magic;       ///< kRegionMagic
  uint32_t version;     ///< kRegionVersion
  uint32_t header_size; ///< sizeof(RegionHeader)
  uint64_t size;        ///< bytes of the whole region
  // --- control, controller-written (read on every hit)
  uint32_t enabled;        ///< 0: every hit returns at once; set last, after everything else
  uint32_t features;       ///< kFeature*; read on every hit, so it may change at any time
  uint32_t probe_capacity; ///< entries in `probes`; hits arrays are this long
  uint32_t probe_count;    ///< entries in use (informational)
  uint32_t program_count;
  uint32_t code_length; ///< instructions (16 bytes each) in `code`
  uint32_t map_count;
  uint32_t format_count;
  uint32_t string_count;
  uint32_t thread_slot_count; ///< power of two
  uint32_t scratch_count;
  uint32_t trap_generation; ///< active trap index = trap_generation & 1
  uint32_t trap_count[2];   ///< entries in trap_index[0] and [1]
  uint32_t tls_tid_offset;  ///< see kFeatureTlsTid
  uint32_t reserved_u32;
  /// int clock_gettime(clockid_t, struct timespec*) in the target (the vDSO's), 0: use the syscall.
  uint64_t clock_gettime;
  uint64_t start_ns; ///< CLOCK_MONOTONIC when tracing started: `elapsed` counts from it
  uint64_t cpid;     ///< `cpid`: the -c command's pid (written before the first hit, 0: none)
  /// SIGTRAP disposition the agent's handler replaced: 0 SIG_DFL, 1 SIG_IGN, else the handler.
  uint64_t sigtrap_prev_handler;
  uint64_t sigtrap_prev_flags; ///< its sa_flags (SA_SIGINFO picks the call signature)
  // --- areas
  AreaRef probes;        ///< ProbeEntry[probe_capacity]
  AreaRef trap_index[2]; ///< TrapIndexEntry[], sorted by address (double-buffered)
  AreaRef programs;      ///< ProgramDesc[program_count]
  AreaRef code;          ///< bytecode::Insn[code_length]
  AreaRef vm_maps;       ///< bytecode::VmMapInfo[map_count] (uint32 key_size each)
  AreaRef vm_formats;    ///< bytecode::VmFormatInfo[format_count] (uint32 args_size each)
  AreaRef map_descs;     ///< MapDesc[map_count]
  AreaRef string_descs;  ///< StringDesc[string_count]
  AreaRef string_views;  ///< bytecode::VmString[string_count], agent-written (pointers)
  AreaRef string_bytes;  ///< the constant strings' characters
  AreaRef thread_slots;  ///< ThreadSlot[thread_slot_count]
  AreaRef scratch;       ///< ScratchState[scratch_count]
  AreaRef ring;          ///< RingHeader, then the record bytes (a power of two)
  AreaRef arena;         ///< thread blocks, VmStates and map tables, allocated by the agent
  // ustack (abi/unwind.h), sized only when a program captures stacks:
  AreaRef unwind_modules; ///< UnwindModule[unwind_module_capacity]
  AreaRef unwind_rows;    ///< UnwindRow[unwind_row_capacity]
  AreaRef stacks;         ///< StackEntry[stack_capacity], filled by the agent
  uint32_t unwind_module_capacity;
  uint32_t unwind_row_capacity;
  uint32_t stack_capacity; ///< a power of two, or 0
  /// Modules in use: the controller writes a module's rows and entry, then raises this (release);
  /// entries below it never change.
  uint32_t unwind_module_count;
  // --- agent-written
  uint32_t module_state;   ///< ModuleState
  uint32_t exit_requested; ///< a program ran exit()
  uint64_t arena_used;     ///< bump pointer: bytes of the arena handed out
  /// Stacks recorded in `stacks` (each raised after its entry is ready): dprobe scans the
  /// table again only when this changed.
  uint64_t stacks_recorded;
  /// The prepared bytecode::VmModule (pointers into the region).
  alignas(8) uint8_t agent_private[64];
  alignas(64) RegionCounters counters;
  alignas(64) LoaderHandshake loader;
};
static_assert(sizeof(RegionHeader) <= kHeaderAreaSize, "the header fits its page");
static_assert(offsetof(RegionHeader, counters) % 64 == 0, "counters on their own lines");

/// ProbeEntry::context_flags and ProgramDesc::context_flags: what the agent must fetch before
/// running the programs (the rest of VmContext is left zero).
inline constexpr uint32_t kNeedsPid = 1u << 0;
inline constexpr uint32_t kNeedsTid = 1u << 1;
inline constexpr uint32_t kNeedsNsecs = 1u << 2;
inline constexpr uint32_t kNeedsComm = 1u << 3;
inline constexpr uint32_t kNeedsIds = 1u << 4; ///< uid and gid
inline constexpr uint32_t kNeedsCpu = 1u << 5;

/// ProbeEntry::fast: the controller found the probe's only program to be exactly one of these
/// shapes, and the agent applies the equivalent update without the interpreter (once this
/// thread's table entry exists; the first hit of each key still goes through the VM). The map
/// is a sharded one.
enum FastPath : uint32_t {
  kFastNone = 0,
  kFastCount = 1, ///< ldi r, 1; mapupd m add r; ret: `@m = count()`, m without keys
  kFastCountByArg =
      2, ///< ldctx r, argN; st64; ldi r', 1; mapupd m add r'; ret: `@m[argN] = count()`
  /// `@m = count()` where nothing in the script reads, clears or otherwise updates m: the
  /// probe's hit counter (ThreadBlock, shared_hits) is the count, and the controller adds the
  /// hit counters of these probes into m. The hit touches no map table at all.
  kFastHitCount = 3,
};

/// One probe site, indexed by the probe_id the trampoline passes.
struct ProbeEntry {
  uint64_t address;        ///< runtime address of the probed instruction (int3 lookups)
  uint64_t resume_address; ///< int3 path: where execution continues after the hit, 0: none
  uint32_t enabled;        ///< 0: the hit is not counted and runs nothing
  uint32_t program_count;  ///< <= kMaxProgramsPerProbe
  uint32_t context_flags;  ///< union of the programs' kNeeds* flags
  uint32_t fast;           ///< FastPath of the probe's only program, kFastNone otherwise
  uint32_t programs[kMaxProgramsPerProbe]; ///< indices into `programs`, run in this order
  uint64_t shared_hits;                    ///< hits counted on the shared path (atomic adds)
  uint32_t fast_map;                       ///< the map a fast path updates
  uint32_t fast_arg;                       ///< kFastCountByArg: the argument that is the key (0-5)
  /// The instruction the registers a program sees belong to (reg("ip"), where ustack starts):
  /// `address`, or for a jump on an exit whose trampoline runs the instructions before the exit
  /// first, the exit itself.
  uint64_t ip;
};
static_assert(sizeof(ProbeEntry) == 88, "probe entry layout");

/// Address -> probe for the SIGTRAP handler.
struct TrapIndexEntry {
  uint64_t address;
  uint32_t probe_id;
  uint32_t reserved;
};
static_assert(sizeof(TrapIndexEntry) == 16, "trap index entry layout");

struct ProgramDesc {
  uint32_t code_offset;   ///< first instruction, an index into `code`
  uint32_t length;        ///< instructions
  uint32_t frame_size;    ///< <= bytecode::kMaxFrameSize
  uint32_t context_flags; ///< kNeeds*
};
static_assert(sizeof(ProgramDesc) == 16, "program descriptor layout");

/// MapDesc::mode. A map that is only ever updated with aggregating ops (UpdateOp Add, Max, Avg,
/// Bucket: count(), sum(), min(), max(), avg(), stats(), hist(), lhist()) is sharded: each thread
/// updates its own table with plain instructions and dprobe merges the tables by the map's rule
/// (bytecode::merge_value). Any other map (looked up, deleted, or assigned) is shared: one table,
/// atomic updates.
enum MapMode : uint8_t { kMapSharded = 0, kMapShared = 1 };

struct MapDesc {
  uint32_t key_size;    ///< bytes of a packed key (a multiple of 8, 0 for a map without keys)
  uint32_t capacity;    ///< entries per table, a power of two
  uint32_t max_entries; ///< live entries one table accepts; inserts past it are dropped
  uint8_t mode;         ///< MapMode
  uint8_t value_kind;   ///< bytecode::MapValueKind (informational for the agent)
  uint16_t reserved;
  uint64_t shared_table; ///< offset of the map's shared MapTable, 0 until the agent makes it
  uint32_t value_words;  ///< 64-bit words of one value, 1..bytecode::kMaxValueWords
  uint32_t reserved2;
};
static_assert(sizeof(MapDesc) == 32, "map descriptor layout");

struct StringDesc {
  uint32_t offset; ///< into string_bytes
  uint32_t length;
};

/// ThreadSlot::have: which cached identity fields are valid.
inline constexpr uint32_t kHaveTid = 1u << 0;
inline constexpr uint32_t kHavePid = 1u << 1;
inline constexpr uint32_t kHaveComm = 1u << 2;
inline constexpr uint32_t kHaveIds = 1u << 3;

/// Per-thread state, found by hashing the thread's fs base. Written only by its thread (and by
/// signal handlers nested on it), except `have`, which the controller clears when the thread
/// exits: glibc reuses thread control blocks, so a later thread may bring the same fs base.
struct alignas(64) ThreadSlot {
  uint64_t key;   ///< thread_key (or the fs base); 0: free (claimed with compare-and-swap)
  uint32_t have;  ///< kHave*
  uint32_t depth; ///< nesting depth of agent calls on this thread
  uint32_t tid;
  uint32_t pid;
  char comm[16];
  uint64_t block; ///< offset of the thread block (thread_block_size bytes), 0: none yet
  uint64_t levels[kMaxNesting]; ///< offsets of per-level VmState scratch, 0: none yet
  uint32_t uid;                 ///< real uid and gid, cached on first use like pid and tid
  uint32_t gid;
  uint64_t reserved[5];
};
static_assert(sizeof(ThreadSlot) == 128, "thread slot layout");

/// A thread block (in the arena): uint64_t hits[probe_capacity], then uint64_t
/// tables[map_count] (offsets of the thread's MapTable per map, 0: none yet).
inline constexpr uint64_t thread_block_size(uint32_t probe_capacity, uint32_t map_count) {
  return 8ull * probe_capacity + 8ull * map_count;
}

/// VmState scratch for hits without a thread slot or level, claimed by atomic exchange of `busy`.
struct alignas(64) ScratchState {
  uint64_t busy;
  uint64_t reserved[7];
  uint8_t state[kVmStateSize];
};
static_assert(sizeof(ScratchState) == 64 + kVmStateSize, "scratch layout");

/// MapTableEntry::state.
enum EntryState : uint32_t {
  kEntryEmpty = 0,
  kEntryBusy = 1, ///< being inserted (the key is not written yet)
  kEntryLive = 2,
  kEntryDeleted = 3, ///< tombstone: the key stays, the value does not count
};

/// A hash table (in the arena) of map_entry_stride(key_size)-byte entries, linear probing.
struct MapTableHeader {
  uint32_t map_id;
  uint32_t capacity;
  uint32_t used; ///< entries ever inserted (bounded by MapDesc::max_entries)
  uint32_t reserved;
};
static_assert(sizeof(MapTableHeader) == 16, "map table header layout");

/// Word 0 of the value sits in the entry, where count()'s fast path adds to it; the value's
/// other words (avg's sum, hist buckets) follow the key.
struct MapTableEntry {
  uint32_t state; ///< EntryState
  uint32_t hash;
  uint64_t value;
  // uint8_t key[key_size] follows, padded to 8 bytes
  // uint64_t more_words[value_words - 1] follow
};
static_assert(sizeof(MapTableEntry) == 16, "map entry layout");

inline constexpr uint64_t map_entry_stride(uint32_t key_size, uint32_t value_words = 1) {
  return sizeof(MapTableEntry) + ((static_cast<uint64_t>(key_size) + 7) & ~7ull) +
         8ull * (value_words > 0 ? value_words - 1 : 0);
}
inline constexpr uint64_t map_table_size(uint32_t key_size, uint32_t capacity,
                                         uint32_t value_words = 1) {
  return sizeof(MapTableHeader) + map_entry_stride(key_size, value_words) * capacity;
}
/// Offset, from the entry, of the value's word i >= 1.
inline constexpr uint64_t map_entry_word_offset(uint32_t key_size, uint32_t i) {
  return sizeof(MapTableEntry) + ((static_cast<uint64_t>(key_size) + 7) & ~7ull) + 8ull * (i - 1);
}

/// The printf ring: multi-producer (agent threads reserve with compare-and-swap on head),
/// single consumer (dprobe advances tail). Positions grow forever; the byte offset of a
/// position is position & (capacity - 1). head and tail sit on separate cache lines.
struct RingHeader {
  uint64_t head;
  uint64_t reserved[7];
  uint64_t tail;
  uint64_t reserved2[7];
};
static_assert(sizeof(RingHeader) == 128, "ring header layout");

/// A record: an 8-byte header then the packed printf arguments, padded to 8 bytes; never split
/// across the end of the ring (a padding record fills the rest instead). The producer writes
/// `size` right after reserving, then the payload, then `meta` with kRecordCommitted (release).
/// The consumer zeroes consumed bytes before it moves tail, so a zero header means "not yet".
struct RecordHeader {
  uint32_t size; ///< bytes of the record with this header, a multiple of 8
  uint32_t meta; ///< format id (low 24 bits) | kRecord* flags
};
static_assert(sizeof(RecordHeader) == 8, "record header layout");
inline constexpr uint32_t kRecordCommitted = 1u << 31;
inline constexpr uint32_t kRecordPadding = 1u << 30;
/// A print()/clear()/zero() of a map, not a printf: the low 24 bits are the map id, the payload
/// one uint64 bytecode::MapCommandKind. dprobe acts on it in ring order.
inline constexpr uint32_t kRecordMapCommand = 1u << 29;
inline constexpr uint32_t kRecordFormatMask = (1u << 24) - 1;

} // namespace dprobe::abi
