// One ELF file's DWARF call-frame information (.eh_frame) as the compact unwind rows the stack
// walk applies (abi/unwind.h): one row per address range with a distinct rule.
#pragma once

#include <cstdint>
#include <vector>

#include "abi/unwind.h"
#include "common/result.h"
#include "elf/elf_file.h"

namespace dprobe::stacks {

struct CfiRows {
  std::vector<abi::UnwindRow> rows; ///< sorted by pc; a kUnwindNoInfo row ends each gap
  uint64_t fdes = 0;                ///< FDEs read
  uint64_t unusable = 0;            ///< rows whose rule the walk cannot apply (kUnwindNoInfo)
};

/// Appends `row` to `out.rows` unless it repeats the last row's rule, replacing a last row at
/// the same pc, and dropping a row whose pc is below the last one's (rows stay sorted).
void append_row(CfiRows& out, const abi::UnwindRow& row);

/// The rows of `file`'s .eh_frame, found through .eh_frame_hdr's table of FDEs and read with
/// elfutils (dwarf_cfi_addrframe). Rules the walk cannot apply (a CFA or return address given
/// by a DWARF expression, as in a PLT) become kUnwindNoInfo rows; a signal trampoline's FDE
/// ('S' augmentation) becomes kUnwindSignalFrame rows. Rows stop at link-time address 2^32 - 1. An error when the file has
/// no usable .eh_frame_hdr.
[[nodiscard]] Result<CfiRows> read_cfi_rows(const elf::ElfFile& file);

} // namespace dprobe::stacks
