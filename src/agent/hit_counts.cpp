#include "agent/hit_counts.h"

namespace dprobe::agent {

std::vector<uint64_t> hit_counted_values(RegionReader& reader, const bytecode::Module& module,
                                         std::span<const ProbeSpec> probes) {
  const RegionLayout& layout = reader.layout();
  std::vector<uint64_t> values(layout.map_count, 0);
  for (uint32_t id = 0; id < probes.size(); ++id) {
    const ProbeSpec& probe = probes[id];
    if (probe.programs.size() != 1 || probe.programs[0] >= module.programs.size()) continue;
    const FastPathInfo fast = fast_path(module.programs[probe.programs[0]], layout);
    if (fast.kind == abi::kFastHitCount && fast.map < values.size()) {
      values[fast.map] += reader.probe_hits(id);
    }
  }
  return values;
}

} // namespace dprobe::agent
