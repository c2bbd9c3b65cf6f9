// Where everything sits in the region shared with the agent (abi/region.h), decided by the
// controller from the compiled script. The controller keeps its RegionLayout and reads the
// region through it, never through offsets it finds in the region itself.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "abi/region.h"
#include "bytecode/module.h"
#include "common/result.h"

namespace dprobe::agent {

struct RegionOptions {
  uint32_t probe_capacity = 0;      ///< probe slots; 0: as many as the probes given at init
  uint32_t thread_slots = 1024;     ///< threads with a private (sharded, syscall-free) fast path
  uint32_t scratch_states = 16;     ///< concurrent hits on the shared path (threads without a slot)
  uint64_t ring_bytes = 1u << 20;   ///< printf ring, a power of two >= 4096
  uint64_t arena_bytes = 64u << 20; ///< thread blocks, scratch and map tables (memfd pages are
                                    ///< only allocated when touched)
  uint32_t max_table_capacity = 1u << 16; ///< entries of one map table, at most
  /// ustack: distinct stacks kept, executable mappings and CFI rows the agent can unwind with.
  uint32_t stack_capacity = 4096;
  uint32_t unwind_module_capacity = 512;
  uint32_t unwind_row_capacity = 1u << 19;
  uint32_t features = 0;             ///< abi::kFeature* (kFeatureFsGsBase from AT_HWCAP2 bit 1)
  uint64_t clock_gettime = 0;        ///< the target's vDSO clock_gettime, 0: use the system call
  uint32_t tls_tid_offset = 0;       ///< with abi::kFeatureTlsTid: where the tid sits in the TLS
  uint64_t start_ns = 0;             ///< CLOCK_MONOTONIC when tracing started (elapsed)
  uint64_t sigtrap_prev_handler = 0; ///< see RegionHeader
  uint64_t sigtrap_prev_flags = 0;
  bool enabled = true; ///< init_region leaves the region enabled
  /// init_region zeroes the ring's records and the arena too. Pass false for memory known to be
  /// zero (a new SharedRegion): zeroing would commit every page of a memfd that is otherwise
  /// only allocated as the agent touches it.
  bool zero_arena = true;
};

/// How the tables of one map are laid out and merged.
struct MapLayout {
  uint32_t key_size = 0;
  uint32_t capacity = 1;    ///< entries per table, a power of two
  uint32_t max_entries = 1; ///< live entries one table accepts
  abi::MapMode mode = abi::kMapShared;
  bytecode::MapValueKind value_kind = bytecode::MapValueKind::Int;
  uint32_t value_words = 1; ///< 64-bit words of one value, 1..bytecode::kMaxValueWords
  /// Every use of the map in the script is `@m = count()` as a program of its own: probes that
  /// run only that program count it with their hit counter (abi::kFastHitCount).
  bool hit_counted = false;
};

struct RegionLayout {
  uint64_t size = 0; ///< bytes, a multiple of the page size
  uint32_t probe_capacity = 0;
  uint32_t program_count = 0;
  uint32_t code_length = 0; ///< instructions
  uint32_t map_count = 0;
  uint32_t format_count = 0;
  uint32_t string_count = 0;
  uint32_t thread_slot_count = 0; ///< a power of two, or 0
  uint32_t scratch_count = 0;
  abi::AreaRef probes{}, trap_index[2]{}, programs{}, code{}, vm_maps{}, vm_formats{}, map_descs{},
      string_descs{}, string_views{}, string_bytes{}, thread_slots{}, scratch{}, ring{}, arena{},
      unwind_modules{}, unwind_rows{}, stacks{};
  /// ustack's tables (abi/unwind.h); all 0 when no program captures a stack.
  uint32_t unwind_module_capacity = 0;
  uint32_t unwind_row_capacity = 0;
  uint32_t stack_capacity = 0; ///< a power of two, or 0
  std::vector<MapLayout> maps;        ///< map_count entries
  std::vector<uint32_t> format_sizes; ///< packed argument bytes per printf format

  [[nodiscard]] uint64_t ring_capacity() const { return ring.size - sizeof(abi::RingHeader); }
};

/// Lays out a region for `module` with room for `probe_count` probes (or options.probe_capacity).
[[nodiscard]] Result<RegionLayout> plan_region(const bytecode::Module& module, uint32_t probe_count,
                                               const RegionOptions& options);

/// Checks that every area lies inside a region of `region_size` bytes, aligned and large enough
/// for its counts, and that the per-map and per-format tables are consistent. The reader and
/// writer refuse layouts that fail this.
[[nodiscard]] Status validate_layout(const RegionLayout& layout, uint64_t region_size);

/// Recovers a layout from a region's own header (for example one left behind by a dprobe that
/// died). The bytes are untrusted: the result is validated like any other layout.
[[nodiscard]] Result<RegionLayout> read_layout(std::span<const uint8_t> region);

/// kMapSharded when every instruction that touches map `map_id` is an aggregating update (Add,
/// Max, Avg, Bucket: per-thread tables merge into the same result); else shared.
[[nodiscard]] abi::MapMode map_mode(const bytecode::Module& module, uint32_t map_id);

/// Whether some program captures user stacks (bytecode::Op::UStack).
[[nodiscard]] bool captures_stacks(const bytecode::Module& module);

/// abi::kNeeds* flags: the context fields the program reads.
[[nodiscard]] uint32_t program_context_flags(const bytecode::Program& program);

/// A program's abi::FastPath shape: exactly the instructions listed there, on a sharded map of
/// the right key size, with in-frame operands, so that the direct update the agent makes is
/// what the VM would do.
struct FastPathInfo {
  abi::FastPath kind = abi::kFastNone;
  uint32_t map = 0;
  uint32_t arg = 0; ///< kFastCountByArg: argument index
};
/// Per map of the module: whether every use of it is `@m = count()` as a program of its own.
[[nodiscard]] std::vector<bool> hit_counted_maps(const bytecode::Module& module);

[[nodiscard]] FastPathInfo fast_path(const bytecode::Program& program, const RegionLayout& layout);

} // namespace dprobe::agent
