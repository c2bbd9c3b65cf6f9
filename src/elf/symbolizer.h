// Addresses to names, as bpftrace prints them in ustack, usym and func.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace dprobe::elf {

/// A code address named by the symbol that holds it.
struct SymbolizedAddress {
  std::string name;     ///< demangled when raw_name is a C++ mangled name, else raw_name
  std::string raw_name; ///< as in the symbol table (without any "@VERSION")
  uint64_t offset = 0;  ///< bytes from the symbol's start

  friend bool operator==(const SymbolizedAddress&, const SymbolizedAddress&) = default;
};

/// abi::__cxa_demangle for names starting with "_Z" or "___Z" (bcc's test); any other name,
/// or one that does not demangle, unchanged.
[[nodiscard]] std::string demangle(std::string_view raw_name);

/// The symbol holding link-time address `vaddr` of `file`, merged with the symbols of its
/// separate debug file when one is given. Symbols of every kind count when their size is not
/// zero (bcc's rule, see SymbolTable::sized_symbol_containing); of the two files the higher
/// start wins, `file` on a tie. nullopt when no symbol holds the address.
[[nodiscard]] std::optional<SymbolizedAddress> symbolize(const ElfFile& file, uint64_t vaddr,
                                                         const ElfFile* debug_file = nullptr);

/// One file-backed mapping of a process, as /proc/PID/maps shows it.
struct MappedFile {
  uint64_t start = 0;
  uint64_t end = 0;    ///< exclusive
  uint64_t offset = 0; ///< file offset of `start`
  std::string path;
  /// bpftrace (bcc) names only addresses in executable mappings: .rodata or .data addresses
  /// print as hex even where a symbol covers them.
  bool executable = true;
  ino_t inode = 0; ///< when not 0, a cached file with another inode is opened again
};

/// Opened ELF files and their debug files, by path: shared by the symbolizers of every
/// process that maps the same libraries. Not thread-safe.
class SymbolFiles {
 public:
  struct Entry {
    std::unique_ptr<ElfFile> file;  ///< nullptr when it could not be opened
    std::unique_ptr<ElfFile> debug; ///< its separate debug file, if found and readable
    std::optional<Error> error;     ///< why `file` is missing
  };

  /// `debug_root`: where separate debug files live ("" looks for none).
  explicit SymbolFiles(std::string debug_root = "/usr/lib/debug");

  /// The files for `path`, opened on first use; failures are cached too. When `inode` is not
  /// 0 and differs from the cached file's, the file changed on disk: it is opened again.
  const Entry& get(const std::string& path, ino_t inode = 0);

 private:
  std::string debug_root_;
  std::map<std::string, Entry, std::less<>> entries_;
};

/// A runtime address named in one process.
struct ProcessSymbol {
  SymbolizedAddress symbol;
  std::string module; ///< path of the mapping holding the address
};

/// Frame layouts of bpftrace's ustack: ustack / ustack(bpftrace) and ustack(perf).
enum class StackMode { bpftrace, perf };

/// Names runtime addresses of one process from its mappings. Files open lazily on the first
/// address inside them. Not thread-safe.
class ProcessSymbolizer {
 public:
  /// `files` may be shared with other symbolizers; nullptr makes a private one.
  /// `demangle_names`: bpftrace's cpp_demangle setting (on by default).
  explicit ProcessSymbolizer(std::vector<MappedFile> mappings,
                             std::shared_ptr<SymbolFiles> files = nullptr,
                             bool demangle_names = true);

  /// Replaces the mappings (after dlopen, munmap or exec); opened files stay cached.
  void set_mappings(std::vector<MappedFile> mappings);

  /// The symbol holding `address`: nullopt outside executable file mappings, in a file that
  /// cannot be read, or where no symbol covers the address.
  [[nodiscard]] std::optional<ProcessSymbol> resolve(uint64_t address);

  /// bpftrace's resolve_usym(): "name", "+OFFSET" (decimal) appended with show_offset,
  /// " (MODULE)" with show_module; an unnamed address prints as "0x55d0c0de" (just "0" for
  /// address 0) and with show_module " ([unknown])" after it. usym(addr) and the func builtin
  /// are usym(addr, false, false); a ustack frame is usym(addr, true, false).
  [[nodiscard]] std::string usym(uint64_t address, bool show_offset = false,
                                 bool show_module = false);

  /// A ustack value as bpftrace prints it: "\n", then one line per frame up to the first 0
  /// address. bpftrace mode: `indent` spaces then usym(addr, true, false), e.g.
  /// "\n        leaf+0\n        main+30\n". bpftrace uses indent 8 for printf("%s"), print()
  /// and map values, 4 inside map keys. perf mode (indent unused): "\t" hex address without
  /// 0x, " ", usym(addr, true, true), e.g. "\t55e0c0de1129 leaf+0 (/tmp/prog)\n".
  [[nodiscard]] std::string ustack(std::span<const uint64_t> frames,
                                   StackMode mode = StackMode::bpftrace, size_t indent = 8);

 private:
  [[nodiscard]] const MappedFile* mapping_for(uint64_t address) const;

  std::vector<MappedFile> mappings_; // sorted by start
  std::shared_ptr<SymbolFiles> files_;
  bool demangle_names_;
};

} // namespace dprobe::elf
