// Reads the defined symbols of .symtab and .dynsym.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "elf/symbol.h"

struct Elf;

namespace dprobe::elf {

/// Every defined, named symbol with an address of both symbol tables, unsorted and with
/// repeats (the SymbolTable merges them). Left out: undefined and absolute symbols, section
/// and file symbols, and TLS symbols (their value is an offset in the TLS block, not an
/// address). Names come without "@VERSION": .dynsym versions come from .gnu.version, .symtab
/// ones from the name's suffix, both into Symbol::is_default_version. The error text is libelf's.
[[nodiscard]] Result<std::vector<Symbol>> read_symbols(Elf *elf);

/// The names of the defined functions (STT_FUNC, STT_GNU_IFUNC, nonzero address) of both
/// symbol tables exactly as the tables spell them, "@VERSION" suffixes of .symtab included, in
/// table order with repeats: what bcc, so bpftrace -l, lists. Unreadable tables are skipped.
[[nodiscard]] std::vector<std::string> read_function_names(Elf *elf);

} // namespace dprobe::elf
