// The GNU build-id note: identifies the exact build of a file.
#pragma once

#include <cstdint>
#include <span>
#include <string>

struct Elf;

namespace dprobe::elf {

/// NT_GNU_BUILD_ID as lowercase hex, "" when the file has none. Looks in PT_NOTE segments
/// first (what is loaded, and all a file without section headers has), then SHT_NOTE sections.
[[nodiscard]] std::string read_build_id(Elf *elf);

/// Lowercase hex of `bytes`, two digits each.
[[nodiscard]] std::string to_hex(std::span<const uint8_t> bytes);

} // namespace dprobe::elf
