// The first bytes of the agent blob: where its entry points are. Freestanding.
//
// Loading the blob (no dynamic loader involved): copy the bytes anywhere page-aligned, write the
// region's address into `region_address`, then make the pages read+execute. The blob has no
// relocations and no writable data: every entry point is at base + its offset.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace dprobe::abi {

/// "DPRBBLOB" little-endian.
inline constexpr uint64_t kAgentBlobMagic = 0x424F4C4242525044ull;
inline constexpr uint32_t kAgentBlobVersion = 1;

struct AgentBlobHeader {
  uint64_t magic;       ///< kAgentBlobMagic
  uint32_t version;     ///< kAgentBlobVersion
  uint32_t header_size; ///< sizeof(AgentBlobHeader)
  uint64_t image_size;  ///< bytes of the blob
  /// void agent_dispatch(RegionHeader*, uint32_t probe_id, SavedRegisters*): the trampolines' call.
  uint64_t dispatch_offset;
  /// void handler(int, siginfo_t*, void*) for rt_sigaction(SIGTRAP) with SA_SIGINFO|SA_RESTORER
  /// (SA_ONSTACK as the target wishes): the int3 mechanism without ptrace.
  uint64_t sigtrap_offset;
  /// rt_sigreturn stub for sa_restorer.
  uint64_t restorer_offset;
  /// Written by the loader before the blob becomes executable: the region's address in the
  /// target, for the SIGTRAP handler (which gets no argument to find it by). 0: no region.
  uint64_t region_address;
  uint64_t reserved[9];
};
static_assert(sizeof(AgentBlobHeader) == 128, "blob header layout");
static_assert(offsetof(AgentBlobHeader, region_address) == 48, "the loader patches this field");

} // namespace dprobe::abi
