// Choosing where to map memory that rel32 jumps from a given address can reach. Pure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "process/maps.h"

namespace dprobe::process {

/// Safety margin kept below the ±2 GiB reach of rel32, so code anywhere in a module near the
/// requested address still reaches the new memory.
inline constexpr uint64_t kNearMargin = uint64_t{16} << 20;
/// Largest distance |x - near| allowed for every byte x of the new region.
inline constexpr uint64_t kNearReach = (uint64_t{1} << 31) - kNearMargin;
/// Lowest address we ever place memory at (far above vm.mmap_min_addr).
inline constexpr uint64_t kLowestAddress = uint64_t{1} << 20;
/// One past the highest user address with 4-level paging (TASK_SIZE_MAX).
inline constexpr uint64_t kHighestAddress = 0x7ffffffff000;
/// Room left free below [stack] so the main stack can still grow.
inline constexpr uint64_t kStackReserve = uint64_t{256} << 20;

/// Page-aligned start addresses of free regions of `length` bytes (rounded up to pages) whose
/// every byte is within kNearReach of `near`, closest first. At most one candidate per gap.
/// Leaves one free page on each side of a neighbour so the region never merges with it.
[[nodiscard]] std::vector<uint64_t> candidate_addresses_near(std::span<const Mapping> maps,
                                                             uint64_t near, uint64_t length,
                                                             uint64_t page_size = 4096);

} // namespace dprobe::process
