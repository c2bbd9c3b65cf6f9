#include "elf/load_segments.h"

#include <gelf.h>

namespace dprobe::elf {

Result<std::vector<LoadSegment>> read_load_segments(Elf *elf) {
  size_t count = 0;
  if (elf_getphdrnum(elf, &count) != 0) return fail("program headers: {}", elf_errmsg(-1));
  std::vector<LoadSegment> segments;
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr) {
      return fail("program header {}: {}", i, elf_errmsg(-1));
    }
    if (phdr.p_type != PT_LOAD) continue;
    if (phdr.p_filesz > phdr.p_memsz) {
      return fail("program header {}: file size 0x{:x} exceeds memory size 0x{:x}", i,
                  phdr.p_filesz, phdr.p_memsz);
    }
    segments.push_back(LoadSegment{
        .vaddr = phdr.p_vaddr,
        .memsz = phdr.p_memsz,
        .file_offset = phdr.p_offset,
        .filesz = phdr.p_filesz,
        .readable = (phdr.p_flags & PF_R) != 0,
        .writable = (phdr.p_flags & PF_W) != 0,
        .executable = (phdr.p_flags & PF_X) != 0,
    });
  }
  return segments;
}

const LoadSegment *segment_for_vaddr(std::span<const LoadSegment> segments, uint64_t vaddr) {
  for (const LoadSegment &s : segments) {
    if (vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) return &s;
  }
  return nullptr;
}

const LoadSegment *segment_for_file_offset(std::span<const LoadSegment> segments, uint64_t offset) {
  for (const LoadSegment &s : segments) {
    if (offset >= s.file_offset && offset - s.file_offset < s.filesz) return &s;
  }
  return nullptr;
}

std::optional<uint64_t> load_bias_for_mapping(std::span<const LoadSegment> segments,
                                              uint64_t mapping_start, uint64_t mapping_offset,
                                              uint64_t page_size) {
  // The loader maps each segment from its page-aligned-down offset; p_vaddr and p_offset are
  // congruent modulo the page size, so one shift holds for the whole mapping. Without
  // -z separate-code one file page can belong to two segments (end of text, start of data);
  // a mapping that starts exactly where a segment's mapping starts is that segment's.
  const LoadSegment *containing = nullptr;
  const LoadSegment *starting = nullptr;
  for (const LoadSegment &s : segments) {
    uint64_t mapped_from = s.file_offset & ~(page_size - 1);
    if (mapping_offset < mapped_from || mapping_offset >= s.file_offset + s.filesz) continue;
    if (containing == nullptr) containing = &s;
    if (starting == nullptr && mapping_offset == mapped_from) starting = &s;
  }
  const LoadSegment *s = starting != nullptr ? starting : containing;
  if (s == nullptr) return std::nullopt;
  uint64_t vaddr_at_offset = s->vaddr - s->file_offset + mapping_offset;
  return mapping_start - vaddr_at_offset;
}

} // namespace dprobe::elf
