#include "elf/symbol_reader.h"

#include <gelf.h>

namespace dprobe::elf {

namespace {

bool is_kept(const GElf_Sym& sym) {
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

Status read_table(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, std::vector<Symbol>& out) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (data == nullptr) return fail("symbol table: {}", elf_errmsg(-1));
  // A stripped-to-debuginfo file keeps the header but marks the data NOBITS.
  if (data->d_buf == nullptr || shdr.sh_entsize == 0) return {};
  size_t count = data->d_size / shdr.sh_entsize;
  // Entry 0 is the reserved null symbol.
  for (size_t i = 1; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) {
      return fail("symbol {}: {}", i, elf_errmsg(-1));
    }
    if (!is_kept(sym)) continue;
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name == nullptr || *name == '\0') continue;
    unsigned type = GELF_ST_TYPE(sym.st_info);
    out.push_back(Symbol{
        .name = name,
        .address = sym.st_value,
        .size = sym.st_size,
        .is_function = type == STT_FUNC || type == STT_GNU_IFUNC,
        .is_global = GELF_ST_BIND(sym.st_info) != STB_LOCAL,
    });
  }
  return {};
}

}  // namespace

Result<std::vector<Symbol>> read_symbols(Elf* elf) {
  std::vector<Symbol> symbols;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) return fail("section header: {}", elf_errmsg(-1));
    if (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM) continue;
    if (Status s = read_table(elf, scn, shdr, symbols); !s) return std::unexpected(s.error());
  }
  return symbols;
}

}  // namespace dprobe::elf
