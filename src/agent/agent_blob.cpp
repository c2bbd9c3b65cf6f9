#include "agent/agent_blob.h"

#include <cstring>
#include <vector>

// Defined by the generated agent_blob_data.S (.incbin of the linked blob).
extern "C" const uint8_t dprobe_agent_blob_start[];
extern "C" const uint8_t dprobe_agent_blob_end[];

namespace dprobe::agent {

std::span<const uint8_t> agent_blob() {
  return {dprobe_agent_blob_start,
          static_cast<size_t>(dprobe_agent_blob_end - dprobe_agent_blob_start)};
}

Result<AgentBlobInfo> agent_blob_info(std::span<const uint8_t> image) {
  abi::AgentBlobHeader h;
  if (image.size() < sizeof h) return fail("agent blob: {} bytes, no header", image.size());
  std::memcpy(&h, image.data(), sizeof h);
  if (h.magic != abi::kAgentBlobMagic || h.version != abi::kAgentBlobVersion ||
      h.header_size != sizeof h) {
    return fail("agent blob: bad header (magic {:#x}, version {})", h.magic, h.version);
  }
  if (h.image_size != image.size() || h.dispatch_offset >= image.size() ||
      h.sigtrap_offset >= image.size() || h.restorer_offset >= image.size() ||
      h.dispatch_offset < sizeof h || h.sigtrap_offset < sizeof h || h.restorer_offset < sizeof h) {
    return fail("agent blob: entry points outside the {}-byte image", image.size());
  }
  AgentBlobInfo info;
  info.image_size = h.image_size;
  info.dispatch_offset = h.dispatch_offset;
  info.sigtrap_offset = h.sigtrap_offset;
  info.restorer_offset = h.restorer_offset;
  return info;
}

std::vector<uint8_t> agent_image_for(uint64_t region_address) {
  const std::span<const uint8_t> blob = agent_blob();
  std::vector<uint8_t> image(blob.begin(), blob.end());
  std::memcpy(image.data() + offsetof(abi::AgentBlobHeader, region_address), &region_address,
              sizeof region_address);
  return image;
}

} // namespace dprobe::agent
