// The values of hit-counted maps (abi::kFastHitCount): a probe whose only program is
// `@m = count()` on such a map never writes m in the region; its hit counter is its share of m.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "agent/region_layout.h"
#include "agent/region_reader.h"
#include "agent/region_writer.h"
#include "bytecode/module.h"

namespace dprobe::agent {

/// Per map of `module`, the sum of the hit counters of the probes that count it by hits (0 for
/// every other map). Which probes those are is decided from the script and the layout, as
/// init_region decided it, never read back from the region. Probe ids are indices into `probes`.
[[nodiscard]] std::vector<uint64_t> hit_counted_values(RegionReader& reader,
                                                       const bytecode::Module& module,
                                                       std::span<const ProbeSpec> probes);

} // namespace dprobe::agent
