#include "elf/symbol_table.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>
#include <tuple>

#include "elf/wildcard.h"

namespace dprobe::elf {

namespace {

bool by_address(const Symbol &a, const Symbol &b) {
  return std::tie(a.address, a.name) < std::tie(b.address, b.name);
}

// Order of the by-name index: name, then the preferred definition first: global, the default
// version, the lowest address.
std::vector<uint32_t> name_order(std::span<const Symbol> symbols) {
  std::vector<uint32_t> order(symbols.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    const Symbol &a = symbols[x];
    const Symbol &b = symbols[y];
    return std::tuple(std::string_view(a.name), !a.is_global, !a.is_default_version, a.address) <
           std::tuple(std::string_view(b.name), !b.is_global, !b.is_default_version, b.address);
  });
  return order;
}

// One past the last byte; a size-0 symbol covers just its address. Saturates on bogus sizes.
uint64_t end_of(const Symbol &s) {
  uint64_t extent = std::max<uint64_t>(s.size, 1);
  if (s.address > std::numeric_limits<uint64_t>::max() - extent) {
    return std::numeric_limits<uint64_t>::max();
  }
  return s.address + extent;
}

// Among symbols at one address, the name to show: a function over data, a global over a
// local, then the public name over internal aliases ("malloc" over "__libc_malloc" and
// "__GI___libc_malloc", "write" over "__write"), judged by fewer leading underscores.
auto alias_rank(const Symbol &s) {
  size_t underscores = s.name.find_first_not_of('_');
  if (underscores == std::string::npos) underscores = s.name.size();
  return std::tuple(s.is_function, s.is_global, -static_cast<std::ptrdiff_t>(underscores));
}

} // namespace

SymbolTable::SymbolTable(std::vector<Symbol> symbols) {
  std::erase_if(symbols, [](const Symbol &s) { return s.name.empty() || s.address == 0; });
  std::sort(symbols.begin(), symbols.end(), by_address);
  for (Symbol &s : symbols) {
    if (!all_.empty() && all_.back().address == s.address && all_.back().name == s.name) {
      Symbol &kept = all_.back();
      kept.is_function = kept.is_function || s.is_function;
      kept.is_global = kept.is_global || s.is_global;
      kept.is_default_version = kept.is_default_version || s.is_default_version;
      kept.size = std::max(kept.size, s.size);
      continue;
    }
    all_.push_back(std::move(s));
  }
  for (const Symbol &s : all_) {
    if (s.is_function) functions_.push_back(s);
  }
  all_by_name_ = name_order(all_);
  functions_by_name_ = name_order(functions_);
  functions_end_max_.reserve(functions_.size());
  uint64_t end_max = 0;
  for (const Symbol &s : functions_) {
    end_max = std::max(end_max, end_of(s));
    functions_end_max_.push_back(end_max);
  }
  all_sized_end_max_.reserve(all_.size());
  end_max = 0;
  for (const Symbol &s : all_) {
    if (s.size != 0) end_max = std::max(end_max, end_of(s));
    all_sized_end_max_.push_back(end_max);
  }
}

const Symbol *SymbolTable::find_in(std::span<const Symbol> symbols,
                                   std::span<const uint32_t> by_name, std::string_view name) {
  auto it = std::lower_bound(by_name.begin(), by_name.end(), name,
                             [&](uint32_t index, std::string_view wanted) {
                               return std::string_view(symbols[index].name) < wanted;
                             });
  if (it == by_name.end() || symbols[*it].name != name) return nullptr;
  return &symbols[*it];
}

const Symbol *SymbolTable::find_function(std::string_view name) const {
  return find_in(functions_, functions_by_name_, name);
}

const Symbol *SymbolTable::find_symbol(std::string_view name) const {
  return find_in(all_, all_by_name_, name);
}

std::vector<const Symbol *> SymbolTable::match_functions(std::string_view pattern) const {
  std::vector<const Symbol *> matches;
  if (!has_wildcard(pattern)) {
    if (const Symbol *s = find_function(pattern)) matches.push_back(s);
    return matches;
  }
  const Symbol *previous = nullptr;
  for (uint32_t index : functions_by_name_) {
    const Symbol *s = &functions_[index];
    // The index lists the preferred definition of a name first; skip the others.
    if (previous != nullptr && previous->name == s->name) continue;
    previous = s;
    if (wildcard_match(pattern, s->name)) matches.push_back(s);
  }
  return matches;
}

const Symbol *SymbolTable::function_containing(uint64_t vaddr) const {
  auto first_after =
      std::upper_bound(functions_.begin(), functions_.end(), vaddr,
                       [](uint64_t address, const Symbol &s) { return address < s.address; });
  const Symbol *best = nullptr;
  for (size_t i = static_cast<size_t>(first_after - functions_.begin()); i-- > 0;) {
    if (functions_end_max_[i] <= vaddr) break; // nothing at or before i reaches vaddr
    const Symbol &s = functions_[i];
    // Backwards, addresses only fall: once one candidate is found, lower starts lose.
    if (best != nullptr && s.address < best->address) break;
    if (end_of(s) <= vaddr) continue;
    // At the same address a later-visited symbol has an earlier name: it wins unless it is
    // local where the current best is global.
    if (best == nullptr || s.is_global >= best->is_global) best = &s;
  }
  return best;
}

const Symbol *SymbolTable::sized_symbol_containing(uint64_t vaddr) const {
  auto first_after =
      std::upper_bound(all_.begin(), all_.end(), vaddr,
                       [](uint64_t address, const Symbol &s) { return address < s.address; });
  const Symbol *best = nullptr;
  for (size_t i = static_cast<size_t>(first_after - all_.begin()); i-- > 0;) {
    if (all_sized_end_max_[i] <= vaddr) break; // nothing at or before i reaches vaddr
    const Symbol &s = all_[i];
    if (best != nullptr && s.address < best->address) break;
    if (s.size == 0 || end_of(s) <= vaddr) continue;
    // Visited backwards, so at one address a later-visited symbol has an earlier name.
    if (best == nullptr || alias_rank(s) >= alias_rank(*best)) best = &s;
  }
  return best;
}

std::vector<std::string_view> SymbolTable::function_names() const {
  std::vector<std::string_view> names;
  names.reserve(functions_by_name_.size());
  for (uint32_t index : functions_by_name_) {
    std::string_view name = functions_[index].name;
    if (names.empty() || names.back() != name) names.push_back(name);
  }
  return names;
}

} // namespace dprobe::elf
