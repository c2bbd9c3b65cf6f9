// Controller-side writes into the region: the initial image, probe entries, the int3 trap
// index, and the few control words dprobe changes while the agent runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "abi/unwind.h"
#include "agent/region_layout.h"
#include "bytecode/module.h"
#include "common/result.h"

namespace dprobe::agent {

/// One probe site: the programs it runs, in order, and where it is.
struct ProbeSpec {
  std::vector<uint32_t> programs; ///< module program indices, at most abi::kMaxProgramsPerProbe
  uint64_t address = 0;           ///< runtime address of the probed instruction (int3 lookups)
  uint64_t resume_address = 0;    ///< int3 path: where the SIGTRAP handler resumes, 0: none
  uint64_t ip = 0;                ///< what programs see as rip (abi::ProbeEntry::ip), 0: address
  bool enabled = true;
};

/// Writes a fresh image: zeroes `region` (the ring's records and the arena only with
/// options.zero_arena), then the
/// header, module, probes and trap index; sets `enabled` last (release) when options.enabled.
/// `module` and `options` must be the ones the layout was planned with. Probe ids are indices
/// into `probes`.
[[nodiscard]] Status init_region(std::span<uint8_t> region, const RegionLayout& layout,
                                 const bytecode::Module& module, std::span<const ProbeSpec> probes,
                                 const RegionOptions& options);

/// (Re)writes probe `probe_id` (programs first, enabled last). Does not touch the trap index.
[[nodiscard]] Status write_probe(std::span<uint8_t> region, const RegionLayout& layout,
                                 const bytecode::Module& module, uint32_t probe_id,
                                 const ProbeSpec& probe);

/// Publishes a new trap index (probe id i is probes[i]) in the inactive buffer, then switches.
/// A SIGTRAP handler still searching the previous buffer is safe until the next call.
[[nodiscard]] Status publish_trap_index(std::span<uint8_t> region, const RegionLayout& layout,
                                        std::span<const ProbeSpec> probes);

/// ustack: publishes `modules` (and the rows they name) past those the region holds, then
/// raises the region's module count (release). Modules and rows are only ever appended, at the
/// same indices as in the caller's tables; returns how many modules the region holds now
/// (fewer than given when its capacity ran out).
uint32_t publish_unwind_tables(std::span<uint8_t> region, const RegionLayout& layout,
                               std::span<const abi::UnwindModule> modules,
                               std::span<const abi::UnwindRow> rows);

void set_enabled(std::span<uint8_t> region, const RegionLayout& layout, bool enabled);
/// `cpid` in the target's programs: the pid of the command dprobe launched.
void set_cpid(std::span<uint8_t> region, const RegionLayout& layout, uint64_t cpid);
/// Replaces the feature flags, e.g. to add abi::kFeatureTlsSelfPointer once every thread has
/// been checked. Takes effect from the next hit.
void set_features(std::span<uint8_t> region, const RegionLayout& layout, uint32_t features);
[[nodiscard]] Status set_probe_enabled(std::span<uint8_t> region, const RegionLayout& layout,
                                       uint32_t probe_id, bool enabled);

/// Drops the cached identity (tid, pid, comm) of thread `tid`, which is exiting: a later thread
/// may get the same fs base. Call while that thread is stopped at its exit event.
void forget_thread(std::span<uint8_t> region, const RegionLayout& layout, uint32_t tid);

} // namespace dprobe::agent
