#include "elf/build_id.h"

#include <gelf.h>

#include <cstring>

namespace dprobe::elf {

namespace {

constexpr char kGnuNoteName[] = "GNU"; // with its NUL: n_namesz is 4

// The build-id in one block of notes, or "" if that block has none.
std::string build_id_in_notes(Elf_Data *data) {
  if (data == nullptr || data->d_buf == nullptr) return "";
  const auto *bytes = static_cast<const uint8_t *>(data->d_buf);
  size_t offset = 0;
  GElf_Nhdr note;
  size_t name_offset = 0;
  size_t desc_offset = 0;
  // gelf_getnote() checks every size against the block, so the pointers below stay inside it.
  while (true) {
    size_t next = gelf_getnote(data, offset, &note, &name_offset, &desc_offset);
    if (next == 0) break;
    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == sizeof(kGnuNoteName) &&
        std::memcmp(bytes + name_offset, kGnuNoteName, sizeof(kGnuNoteName)) == 0) {
      return to_hex({bytes + desc_offset, note.n_descsz});
    }
    offset = next;
  }
  return "";
}

std::string build_id_from_segments(Elf *elf) {
  size_t count = 0;
  if (elf_getphdrnum(elf, &count) != 0) return "";
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr || phdr.p_type != PT_NOTE) {
      continue;
    }
    // Notes aligned to 8 (e.g. .note.gnu.property) pad differently from the classic 4.
    Elf_Type type = phdr.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR;
    std::string id = build_id_in_notes(
        elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset), phdr.p_filesz, type));
    if (!id.empty()) return id;
  }
  return "";
}

std::string build_id_from_sections(Elf *elf) {
  for (Elf_Scn *scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_NOTE) continue;
    std::string id = build_id_in_notes(elf_getdata(scn, nullptr));
    if (!id.empty()) return id;
  }
  return "";
}

} // namespace

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    text += kDigits[b >> 4];
    text += kDigits[b & 0xf];
  }
  return text;
}

std::string read_build_id(Elf *elf) {
  std::string id = build_id_from_segments(elf);
  if (id.empty()) id = build_id_from_sections(elf);
  return id;
}

} // namespace dprobe::elf
