// An ELF executable or shared library opened for probing: symbols, segments, build-id.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "elf/load_segments.h"
#include "elf/name_suggestions.h"
#include "elf/symbol.h"
#include "elf/symbol_table.h"
#include "elf/wildcard.h"

struct Elf;

namespace dprobe::elf {

/// One x86-64 ELF file (ET_EXEC or ET_DYN). Everything is read at open(), so the object is
/// immutable afterwards and safe to share between threads for const use. Owns its fd and
/// libelf descriptor; not copyable.
class ElfFile {
public:
  /// Opens and indexes `path`. Errors read "PATH: No such file or directory" (errno kept),
  /// "PATH: not an ELF file", "PATH: not an x86-64 ELF file",
  /// "PATH: not an executable or shared library", "PATH: not a regular file".
  [[nodiscard]] static Result<std::unique_ptr<ElfFile>> open(const std::string &path);

  ElfFile(const ElfFile &) = delete;
  ElfFile &operator=(const ElfFile &) = delete;
  ~ElfFile();

  [[nodiscard]] const std::string &path() const { return path_; }
  /// ET_DYN (PIE or shared library): runtime address = load bias + vaddr. ET_EXEC: bias 0.
  [[nodiscard]] bool is_dynamic() const { return is_dynamic_; }
  [[nodiscard]] uint64_t entry() const { return entry_; }
  /// Identity from fstat() at open, to find this file's lines in /proc/PID/maps. Caution: on
  /// overlayfs, maps shows the underlying device while fstat() shows the overlay's; the inode
  /// agrees on both.
  [[nodiscard]] dev_t device() const { return device_; }
  [[nodiscard]] ino_t inode() const { return inode_; }

  /// PT_LOAD headers in file order.
  [[nodiscard]] std::span<const LoadSegment> load_segments() const { return segments_; }
  /// Function symbols (STT_FUNC, STT_GNU_IFUNC) with nonzero address from .symtab and
  /// .dynsym, each name+address once, sorted by address then name.
  [[nodiscard]] std::span<const Symbol> functions() const { return symbols_.functions(); }
  /// Every named symbol with a nonzero address (also NOTYPE, OBJECT, local labels), each
  /// name+address once, sorted by address then name.
  [[nodiscard]] std::span<const Symbol> all_symbols() const { return symbols_.all_symbols(); }

  /// Exact name; with several definitions (local functions of different translation units,
  /// versions of a libc function) a global one, then the default version, then the lowest
  /// address.
  [[nodiscard]] const Symbol *find_function(std::string_view name) const {
    return symbols_.find_function(name);
  }
  /// Exact name, any symbol kind; same preference as find_function().
  [[nodiscard]] const Symbol *find_symbol(std::string_view name) const {
    return symbols_.find_symbol(name);
  }
  /// find_function() as a Result whose error is one line naming file and symbol, e.g.
  /// "/path/to/loop: no function 'wrk' (did you mean 'work'?)", or
  /// "/path/to/loop: 'counter' is not a function" for a data symbol of that name.
  [[nodiscard]] Result<Symbol> resolve_function(std::string_view name) const;
  /// bpftrace wildcard ('*' any run, '?' one character): one function per distinct name,
  /// sorted by name.
  [[nodiscard]] std::vector<const Symbol *> match_functions(std::string_view pattern) const {
    return symbols_.match_functions(pattern);
  }
  /// The function with vaddr in [address, address + size); a size-0 function only at its
  /// exact address. nullptr when none.
  [[nodiscard]] const Symbol *function_containing(uint64_t vaddr) const {
    return symbols_.function_containing(vaddr);
  }
  /// The symbol of any kind with a nonzero size holding vaddr, as bpftrace's symbolizer (bcc)
  /// picks it; see SymbolTable::sized_symbol_containing().
  [[nodiscard]] const Symbol *sized_symbol_containing(uint64_t vaddr) const {
    return symbols_.sized_symbol_containing(vaddr);
  }

  /// Through the PT_LOAD holding vaddr in its file-backed part (not .bss).
  [[nodiscard]] Result<uint64_t> vaddr_to_file_offset(uint64_t vaddr) const;
  [[nodiscard]] Result<uint64_t> file_offset_to_vaddr(uint64_t offset) const;
  /// The bytes at [vaddr, vaddr + length) as stored in the file; the range must lie in the
  /// file-backed part of one PT_LOAD.
  [[nodiscard]] Result<std::vector<uint8_t>> read_at_vaddr(uint64_t vaddr, size_t length) const;
  /// Load bias of a mapping of this file seen in /proc/PID/maps (start address and file
  /// offset of that line): runtime address = bias + vaddr.
  [[nodiscard]] Result<uint64_t> load_bias(uint64_t mapping_start, uint64_t mapping_offset) const;

  /// NT_GNU_BUILD_ID as lowercase hex, "" when absent.
  [[nodiscard]] std::string build_id() const { return build_id_; }

  /// The libelf descriptor, for readers built on elfutils (e.g. libdw's dwarf_begin_elf).
  /// Owned by this object; do not elf_end() it.
  [[nodiscard]] Elf *elf_handle() const { return elf_; }

private:
  ElfFile() = default;

  std::string path_;
  UniqueFd fd_;
  Elf *elf_ = nullptr; // owned: elf_end() in the destructor body, before fd_ closes
  bool is_dynamic_ = false;
  uint64_t entry_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  std::vector<LoadSegment> segments_;
  SymbolTable symbols_;
  std::string build_id_;
};

} // namespace dprobe::elf
