// What the dynamic loader says about objects loaded in this test process: the independent
// source of truth the ElfFile results are checked against.
#pragma once

#include <link.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dprobe::elf::testing {

struct LoadedObject {
  std::string path; // as the loader names it; "/proc/self/exe" for the main program
  uint64_t bias = 0;
  std::vector<ElfW(Phdr)> phdrs;
};

/// The main program (the first object dl_iterate_phdr reports).
[[nodiscard]] LoadedObject main_program();
/// The first loaded object whose path contains `fragment`, e.g. "libc.so.6".
[[nodiscard]] std::optional<LoadedObject> loaded_object_named(std::string_view fragment);

/// The NT_GNU_BUILD_ID of a loaded object, read from its PT_NOTE segments in memory, as
/// lowercase hex; "" when absent.
[[nodiscard]] std::string build_id_in_memory(const LoadedObject &object);

} // namespace dprobe::elf::testing
