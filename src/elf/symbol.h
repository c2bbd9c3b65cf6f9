// One symbol of an ELF file, as the rest of dprobe sees it.
#pragma once

#include <cstdint>
#include <string>

namespace dprobe::elf {

/// A named, defined symbol. Addresses are link-time virtual addresses (st_value); add the
/// load bias of a mapping to get the runtime address when the file is ET_DYN.
struct Symbol {
  std::string name;
  uint64_t address = 0;     ///< st_value: virtual address as in the file (link-time)
  uint64_t size = 0;        ///< st_size (0 when unknown, e.g. assembly labels)
  bool is_function = false; ///< STT_FUNC or STT_GNU_IFUNC (for IFUNC this is the resolver)
  bool is_global = false;   ///< STB_GLOBAL, STB_WEAK or STB_GNU_UNIQUE (visible outside its TU)
  /// False for an old, non-default version of a versioned symbol (libc's
  /// pthread_cond_wait@GLIBC_2.2.5 beside pthread_cond_wait@@GLIBC_2.3.2): kept for programs
  /// linked long ago, never what a new link binds to. Names never carry the "@VERSION" part.
  bool is_default_version = true;

  friend bool operator==(const Symbol &, const Symbol &) = default;
};

} // namespace dprobe::elf
