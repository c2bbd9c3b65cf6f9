// Controller-side writes of map entries into the region: values a program dprobe runs (BEGIN)
// stored before the probes' first hits, put where the agent's programs read them. Hits that
// read a map (`@x = @x + 1`) use the map's shared table only, so that is where seeds go.
// The region is untrusted (DESIGN.md, invariant 8): every offset is checked against the
// controller's own layout, and the insert follows the agent's protocol (maps.cpp) with atomic
// operations, so a thread running a hit at the same time at worst loses this one entry.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "agent/region_layout.h"
#include "common/result.h"

namespace dprobe::agent {

/// Folds `words` (layout.maps[map_id].value_words of them) into map `map_id`'s entry for packed
/// `key` in the map's shared table, creating the table (from the arena) and the entry when
/// missing: aggregations combine by the map's rule, an assigned value already there stays (the
/// agent's is newer). Fails on a bad id or sizes, a full table or arena, or a table offset the
/// target corrupted.
[[nodiscard]] Status seed_shared_entry(std::span<uint8_t> region, const RegionLayout& layout,
                                       uint32_t map_id, std::string_view key,
                                       std::span<const uint64_t> words);

} // namespace dprobe::agent
