// PT_LOAD segments and translation between file offsets and link-time virtual addresses.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"

struct Elf; // libelf's descriptor (libelf.h: typedef struct Elf Elf)

namespace dprobe::elf {

/// One PT_LOAD program header. Bytes [vaddr, vaddr + filesz) come from the file at
/// file_offset; the rest up to memsz is zero-filled (.bss) and has no file offset.
struct LoadSegment {
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t file_offset = 0;
  uint64_t filesz = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;

  friend bool operator==(const LoadSegment &, const LoadSegment &) = default;
};

/// The PT_LOAD headers of `elf` in file order. The error text is libelf's.
[[nodiscard]] Result<std::vector<LoadSegment>> read_load_segments(Elf *elf);

/// The segment whose file-backed part holds `vaddr`, if any.
[[nodiscard]] const LoadSegment *segment_for_vaddr(std::span<const LoadSegment> segments,
                                                   uint64_t vaddr);
/// The segment whose file-backed part holds `offset`, if any.
[[nodiscard]] const LoadSegment *segment_for_file_offset(std::span<const LoadSegment> segments,
                                                         uint64_t offset);

/// Load bias of a mapping seen in /proc/PID/maps: runtime address = bias + vaddr. The mapping
/// starts at `mapping_start` with file offset `mapping_offset` (page-aligned, so it may lie
/// up to a page before the segment's own p_offset). When one file page belongs to two
/// segments, the one whose mapping starts at exactly that offset is taken. nullopt when no
/// PT_LOAD covers the offset.
[[nodiscard]] std::optional<uint64_t> load_bias_for_mapping(std::span<const LoadSegment> segments,
                                                            uint64_t mapping_start,
                                                            uint64_t mapping_offset,
                                                            uint64_t page_size = 4096);

} // namespace dprobe::elf
