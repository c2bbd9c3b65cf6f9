// Writes ld.so.cache images for tests, in the layout glibc's ldconfig uses.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "elf/ld_so_cache.h"

namespace dprobe::elf::testing {

/// A "glibc-ld.so.cache1.1" image holding `entries` in order; with `compat`, preceded by an
/// old-format "ld.so-1.7.0" table of the same length, as ldconfig -c compat writes.
[[nodiscard]] std::vector<uint8_t> build_ld_cache(std::span<const LdCacheEntry> entries,
                                                  bool compat = false);

} // namespace dprobe::elf::testing
