// The agent blob embedded in dprobe: the bytes to copy into a target, and its entry points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "abi/agent_blob.h"
#include "common/result.h"

namespace dprobe::agent {

/// The flat image (abi/agent_blob.h describes its first bytes).
[[nodiscard]] std::span<const uint8_t> agent_blob();

/// Entry point offsets from the image's first byte.
struct AgentBlobInfo {
  uint64_t image_size = 0;
  uint64_t dispatch_offset = 0; ///< agent_dispatch, what trampolines call
  uint64_t sigtrap_offset = 0;  ///< the SIGTRAP handler (SA_SIGINFO)
  uint64_t restorer_offset = 0; ///< sa_restorer (rt_sigreturn)
  uint64_t region_address_offset = offsetof(abi::AgentBlobHeader, region_address);
};

/// Parses and checks a blob's header (the embedded one by default).
[[nodiscard]] Result<AgentBlobInfo> agent_blob_info(std::span<const uint8_t> image = agent_blob());

/// A copy of the blob, ready to be written into a target whose region is mapped at
/// `region_address`.
[[nodiscard]] std::vector<uint8_t> agent_image_for(uint64_t region_address);

} // namespace dprobe::agent
