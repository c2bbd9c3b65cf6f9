// Separate debug files (Debian's *-dbg / *-dbgsym packages): where a stripped file's full
// symbol table lives.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/result.h"

struct Elf;

namespace dprobe::elf {

class ElfFile;

/// The .gnu_debuglink section: the debug file's name and the CRC-32 of its contents.
struct DebugLink {
  std::string file_name;
  uint32_t crc = 0;

  friend bool operator==(const DebugLink&, const DebugLink&) = default;
};

/// The .gnu_debuglink of `elf`, nullopt when it has none or it is malformed.
[[nodiscard]] std::optional<DebugLink> read_debuglink(Elf* elf);

/// The CRC-32 that .gnu_debuglink uses (zlib's crc32: reflected polynomial 0xedb88320),
/// continued from `crc` (0 to start).
[[nodiscard]] uint32_t debuglink_crc32(uint32_t crc, std::span<const uint8_t> bytes);

/// debuglink_crc32 of a whole file.
[[nodiscard]] Result<uint32_t> file_crc32(const std::string& path);

/// The separate debug file of `file`, looked up as gdb and bcc (so bpftrace) do:
/// DEBUG_ROOT/.build-id/ab/cdef....debug for build-id abcdef..., then through .gnu_debuglink
/// DIR/NAME, DIR/.debug/NAME and DEBUG_ROOT/DIR/NAME (DIR: the directory of file.path()),
/// the first whose CRC-32 matches. nullopt when there is none.
[[nodiscard]] std::optional<std::string> find_debug_file(const ElfFile& file,
                                                         const std::string& debug_root);

} // namespace dprobe::elf
