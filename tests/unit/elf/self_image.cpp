#include "self_image.h"

#include <elf.h>

#include <cstdio>
#include <cstring>
#include <utility>

namespace dprobe::elf::testing {

namespace {

LoadedObject from_info(const dl_phdr_info &info, std::string path) {
  LoadedObject object{std::move(path), info.dlpi_addr, {}};
  object.phdrs.assign(info.dlpi_phdr, info.dlpi_phdr + info.dlpi_phnum);
  return object;
}

struct Search {
  std::string_view fragment; // empty: the main program
  bool first = true;
  std::optional<LoadedObject> found;
};

int visit(dl_phdr_info *info, size_t, void *data) {
  auto *search = static_cast<Search *>(data);
  bool is_first = std::exchange(search->first, false);
  if (search->fragment.empty()) {
    if (is_first) search->found = from_info(*info, "/proc/self/exe");
    return 1;
  }
  std::string_view name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (name.find(search->fragment) == std::string_view::npos) return 0;
  search->found = from_info(*info, std::string(name));
  return 1;
}

size_t align_up(size_t value, size_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

} // namespace

LoadedObject main_program() {
  Search search;
  dl_iterate_phdr(visit, &search);
  return search.found.value();
}

std::optional<LoadedObject> loaded_object_named(std::string_view fragment) {
  Search search;
  search.fragment = fragment;
  dl_iterate_phdr(visit, &search);
  return search.found;
}

std::string build_id_in_memory(const LoadedObject &object) {
  for (const ElfW(Phdr) & phdr : object.phdrs) {
    if (phdr.p_type != PT_NOTE) continue;
    size_t alignment = phdr.p_align == 8 ? 8 : 4;
    const auto *base = reinterpret_cast<const uint8_t *>(object.bias + phdr.p_vaddr);
    size_t offset = 0;
    while (offset + sizeof(ElfW(Nhdr)) <= phdr.p_memsz) {
      ElfW(Nhdr) note;
      std::memcpy(&note, base + offset, sizeof(note));
      size_t name_at = offset + sizeof(note);
      size_t desc_at = align_up(name_at + note.n_namesz, alignment);
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(base + name_at, "GNU", 4) == 0) {
        std::string hex;
        for (size_t i = 0; i < note.n_descsz; ++i) {
          char digits[3];
          std::snprintf(digits, sizeof(digits), "%02x", base[desc_at + i]);
          hex += digits;
        }
        return hex;
      }
      offset = align_up(desc_at + note.n_descsz, alignment);
    }
  }
  return "";
}

} // namespace dprobe::elf::testing
