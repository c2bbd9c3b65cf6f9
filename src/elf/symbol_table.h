// Lookup structure over the symbols of one ELF file: by name, by wildcard, by address.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "elf/symbol.h"

namespace dprobe::elf {

/// Immutable after construction, so concurrent const use is safe. Pointers it returns stay
/// valid for its lifetime (also across moves: the storage moves with it).
class SymbolTable {
public:
  SymbolTable() = default;

  /// Takes symbols in any order, possibly repeated (.symtab and .dynsym overlap). Entries with
  /// the same name and address are merged into one: a function if either says so, the larger
  /// size, global if either is, the default version if either is. Entries with an empty name
  /// or address 0 are dropped.
  explicit SymbolTable(std::vector<Symbol> symbols);

  /// Every kept symbol, sorted by address then name.
  [[nodiscard]] std::span<const Symbol> all_symbols() const { return all_; }
  /// The function symbols among them, sorted by address then name.
  [[nodiscard]] std::span<const Symbol> functions() const { return functions_; }

  /// The function with this exact name. When several share it (static functions of different
  /// translation units, versions of one libc function), a global one wins, then the default
  /// version, then the lowest address.
  [[nodiscard]] const Symbol *find_function(std::string_view name) const;
  /// Same, over symbols of any kind.
  [[nodiscard]] const Symbol *find_symbol(std::string_view name) const;

  /// One function per distinct name matching the bpftrace wildcard, sorted by name; for a
  /// repeated name the same one find_function() would pick.
  [[nodiscard]] std::vector<const Symbol *> match_functions(std::string_view pattern) const;

  /// The function whose [address, address + size) holds `vaddr` (size 0: only its exact
  /// address). With several (aliases, nested labels) the highest start wins, then global,
  /// then the first name.
  [[nodiscard]] const Symbol *function_containing(uint64_t vaddr) const;

  /// The symbol of any kind with a nonzero size whose [address, address + size) holds
  /// `vaddr`: the rule of bcc's symbolizer, so of bpftrace's usym/ustack/func, where a size-0
  /// symbol names nothing. With several, the highest start wins, then a function, then global,
  /// then the name with the fewest leading underscores ("malloc", not "__libc_malloc"), then
  /// the first name. (bcc's pick among aliases depends on std::sort's order of equal keys:
  /// bpftrace prints __GI___libc_malloc, fclose@@GLIBC_2.2.5 or _IO_new_fopen there.)
  [[nodiscard]] const Symbol *sized_symbol_containing(uint64_t vaddr) const;

  /// Distinct function names, sorted: the candidates for "did you mean".
  [[nodiscard]] std::vector<std::string_view> function_names() const;

private:
  [[nodiscard]] static const Symbol *find_in(std::span<const Symbol> symbols,
                                             std::span<const uint32_t> by_name,
                                             std::string_view name);

  std::vector<Symbol> all_;
  std::vector<Symbol> functions_;
  std::vector<uint32_t> all_by_name_;       // indices into all_, see name_order()
  std::vector<uint32_t> functions_by_name_; // indices into functions_
  // functions_end_max_[i]: the largest end of functions_[0..i], so a backwards scan in
  // function_containing() knows when no earlier function can reach the address.
  std::vector<uint64_t> functions_end_max_;
  // all_sized_end_max_[i]: the largest end of the nonzero-size symbols among all_[0..i].
  std::vector<uint64_t> all_sized_end_max_;
};

} // namespace dprobe::elf
