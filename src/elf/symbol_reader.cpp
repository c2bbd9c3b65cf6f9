#include "elf/symbol_reader.h"

#include <gelf.h>

#include <string_view>

namespace dprobe::elf {

namespace {

// Bit of a .gnu.version entry that marks a non-default version (foo@VER, not foo@@VER).
constexpr GElf_Versym kVersymHidden = 0x8000;

bool is_kept(const GElf_Sym &sym) {
  if (sym.st_value == 0 || sym.st_name == 0) return false;
  if (sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS) return false;
  switch (GELF_ST_TYPE(sym.st_info)) {
  case STT_SECTION:
  case STT_FILE:
  case STT_TLS:
    return false;
  default:
    return true;
  }
}

// The .gnu.version data that belongs to the symbol table `symtab`, or nullptr.
Elf_Data *versym_data_for(Elf *elf, Elf_Scn *symtab) {
  size_t symtab_index = elf_ndxscn(symtab);
  for (Elf_Scn *scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) != nullptr && shdr.sh_type == SHT_GNU_versym &&
        shdr.sh_link == symtab_index) {
      return elf_getdata(scn, nullptr);
    }
  }
  return nullptr;
}

// .symtab spells versions into names ("foo@@VER" default, "foo@VER" otherwise) where .dynsym
// keeps them in .gnu.version. Drop the suffix so both tables agree on the name; C and C++
// names never contain '@'.
void split_version(std::string_view &name, bool &is_default_version) {
  size_t at = name.find('@');
  if (at == std::string_view::npos) return;
  is_default_version = name.substr(at, 2) == "@@";
  name = name.substr(0, at);
}

Status read_table(Elf *elf, Elf_Scn *scn, const GElf_Shdr &shdr, std::vector<Symbol> &out) {
  Elf_Data *data = elf_getdata(scn, nullptr);
  if (data == nullptr) return fail("symbol table: {}", elf_errmsg(-1));
  // A stripped-to-debuginfo file keeps the header but marks the data NOBITS.
  if (data->d_buf == nullptr || shdr.sh_entsize == 0) return {};
  Elf_Data *versyms = shdr.sh_type == SHT_DYNSYM ? versym_data_for(elf, scn) : nullptr;
  size_t count = data->d_size / shdr.sh_entsize;
  // Entry 0 is the reserved null symbol.
  for (size_t i = 1; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) {
      return fail("symbol {}: {}", i, elf_errmsg(-1));
    }
    if (!is_kept(sym)) continue;
    const char *raw_name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (raw_name == nullptr) continue;
    std::string_view name = raw_name;
    bool is_default_version = true;
    GElf_Versym versym = 0;
    if (versyms != nullptr && gelf_getversym(versyms, static_cast<int>(i), &versym) != nullptr) {
      is_default_version = (versym & kVersymHidden) == 0;
    } else if (shdr.sh_type == SHT_SYMTAB) {
      split_version(name, is_default_version);
    }
    if (name.empty()) continue;
    unsigned type = GELF_ST_TYPE(sym.st_info);
    out.push_back(Symbol{
        .name = std::string(name),
        .address = sym.st_value,
        .size = sym.st_size,
        .is_function = type == STT_FUNC || type == STT_GNU_IFUNC,
        .is_global = GELF_ST_BIND(sym.st_info) != STB_LOCAL,
        .is_default_version = is_default_version,
    });
  }
  return {};
}

} // namespace

Result<std::vector<Symbol>> read_symbols(Elf *elf) {
  std::vector<Symbol> symbols;
  for (Elf_Scn *scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) return fail("section header: {}", elf_errmsg(-1));
    if (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM) continue;
    if (Status s = read_table(elf, scn, shdr, symbols); !s) return std::unexpected(s.error());
  }
  return symbols;
}

std::vector<std::string> read_function_names(Elf *elf) {
  std::vector<std::string> names;
  for (Elf_Scn *scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    if (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM) continue;
    Elf_Data *data = elf_getdata(scn, nullptr);
    if (data == nullptr || data->d_buf == nullptr || shdr.sh_entsize == 0) continue;
    const size_t count = data->d_size / shdr.sh_entsize;
    for (size_t i = 1; i < count; ++i) {
      GElf_Sym sym;
      if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) continue;
      const unsigned type = GELF_ST_TYPE(sym.st_info);
      if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
      if (sym.st_value == 0 || sym.st_shndx == SHN_UNDEF) continue;
      const char *name = elf_strptr(elf, shdr.sh_link, sym.st_name);
      if (name != nullptr && name[0] != '\0') names.emplace_back(name);
    }
  }
  return names;
}

} // namespace dprobe::elf
