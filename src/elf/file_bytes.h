// Whole-file reads for the small files this component parses (ld.so.cache, /proc/PID/maps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace dprobe::elf {

/// The bytes of `path`, read until end of file (so /proc files, which report size 0, work).
/// Fails with EFBIG past `max_size` bytes. Errors read "PATH: strerror".
[[nodiscard]] Result<std::vector<uint8_t>> read_file_bytes(const std::string& path,
                                                           size_t max_size = size_t{64} << 20);

} // namespace dprobe::elf
