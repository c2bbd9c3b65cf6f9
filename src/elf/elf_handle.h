// RAII ownership of a libelf descriptor.
#pragma once

#include <libelf.h>

#include <memory>

namespace dprobe::elf {

struct ElfEnd {
  void operator()(Elf *elf) const { elf_end(elf); }
};

/// Owns an Elf*; elf_end() runs on destruction. The fd it reads must outlive it.
using ElfHandle = std::unique_ptr<Elf, ElfEnd>;

} // namespace dprobe::elf
