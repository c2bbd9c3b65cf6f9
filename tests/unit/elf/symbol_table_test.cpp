#include "elf/symbol_table.h"

#include <gtest/gtest.h>

namespace dprobe::elf {
namespace {

Symbol fn(std::string name, uint64_t address, uint64_t size, bool global = true) {
  return Symbol{std::move(name), address, size, true, global};
}
Symbol data(std::string name, uint64_t address, uint64_t size, bool global = true) {
  return Symbol{std::move(name), address, size, false, global};
}

std::vector<std::string> names_of(std::span<const Symbol> symbols) {
  std::vector<std::string> names;
  for (const Symbol &s : symbols)
    names.push_back(s.name);
  return names;
}
std::vector<std::string> names_of(const std::vector<const Symbol *> &symbols) {
  std::vector<std::string> names;
  for (const Symbol *s : symbols)
    names.push_back(s->name);
  return names;
}

TEST(SymbolTable, SortsByAddressThenNameAndSplitsFunctions) {
  SymbolTable table(
      {fn("b", 0x300, 4), data("counter", 0x100, 8), fn("a", 0x300, 4), fn("main", 0x200, 16)});
  EXPECT_EQ(names_of(table.all_symbols()), (std::vector<std::string>{"counter", "main", "a", "b"}));
  EXPECT_EQ(names_of(table.functions()), (std::vector<std::string>{"main", "a", "b"}));
}

TEST(SymbolTable, DropsUnnamedAndZeroAddress) {
  SymbolTable table({fn("", 0x100, 4), fn("weak_undefined", 0, 0), fn("main", 0x200, 4)});
  EXPECT_EQ(names_of(table.all_symbols()), (std::vector<std::string>{"main"}));
}

TEST(SymbolTable, MergesSameNameAndAddressFromBothTables) {
  // .symtab says NOTYPE/local with no size, .dynsym says FUNC/global with a size.
  SymbolTable table(
      {data("work", 0x1000, 0, false), fn("work", 0x1000, 32, true), fn("work", 0x2000, 8, false)});
  ASSERT_EQ(table.all_symbols().size(), 2u);
  EXPECT_EQ(table.all_symbols()[0], fn("work", 0x1000, 32, true));
  ASSERT_EQ(table.functions().size(), 2u);
  EXPECT_EQ(table.functions()[1], fn("work", 0x2000, 8, false));
}

TEST(SymbolTable, FindPrefersGlobalThenLowestAddress) {
  SymbolTable table({fn("helper", 0x3000, 8, false), fn("helper", 0x2000, 8, false),
                     fn("parse", 0x5000, 8, false), fn("parse", 0x6000, 8, true),
                     data("counter", 0x9000, 4)});
  ASSERT_NE(table.find_function("helper"), nullptr);
  EXPECT_EQ(table.find_function("helper")->address, 0x2000u);
  ASSERT_NE(table.find_function("parse"), nullptr);
  EXPECT_EQ(table.find_function("parse")->address, 0x6000u);
  EXPECT_EQ(table.find_function("counter"), nullptr);
  ASSERT_NE(table.find_symbol("counter"), nullptr);
  EXPECT_EQ(table.find_symbol("counter")->address, 0x9000u);
  EXPECT_EQ(table.find_function("pars"), nullptr);
  EXPECT_EQ(table.find_function("parse_"), nullptr);
}

TEST(SymbolTable, FindPrefersTheDefaultVersion) {
  Symbol old_version = fn("pthread_cond_wait", 0x1000, 8);
  old_version.is_default_version = false;
  Symbol current = fn("pthread_cond_wait", 0x2000, 8);
  SymbolTable table({old_version, current});
  ASSERT_NE(table.find_function("pthread_cond_wait"), nullptr);
  EXPECT_EQ(table.find_function("pthread_cond_wait")->address, 0x2000u);
  EXPECT_EQ(table.match_functions("pthread_cond_*")[0]->address, 0x2000u);
  EXPECT_EQ(table.functions().size(), 2u);
}

TEST(SymbolTable, MergedEntryIsDefaultIfEitherTableSaysSo) {
  Symbol from_symtab = data("stdout", 0x5000, 8);
  from_symtab.is_default_version = false;
  SymbolTable table({from_symtab, data("stdout", 0x5000, 8)});
  ASSERT_EQ(table.all_symbols().size(), 1u);
  EXPECT_TRUE(table.all_symbols()[0].is_default_version);
}

TEST(SymbolTable, MatchFunctionsOnePerNameSortedByName) {
  SymbolTable table({fn("parse_b", 0x100, 8), fn("parse_a", 0x200, 8),
                     fn("parse_a", 0x300, 8, false), fn("print", 0x400, 8),
                     data("parse_data", 0x500, 8)});
  std::vector<const Symbol *> matches = table.match_functions("parse_*");
  EXPECT_EQ(names_of(matches), (std::vector<std::string>{"parse_a", "parse_b"}));
  EXPECT_EQ(matches[0]->address, 0x200u); // the global one, as find_function picks
  EXPECT_EQ(names_of(table.match_functions("p*")),
            (std::vector<std::string>{"parse_a", "parse_b", "print"}));
  EXPECT_EQ(names_of(table.match_functions("parse_?")),
            (std::vector<std::string>{"parse_a", "parse_b"}));
  EXPECT_EQ(names_of(table.match_functions("print")), (std::vector<std::string>{"print"}));
  EXPECT_TRUE(table.match_functions("nothing*").empty());
  EXPECT_TRUE(table.match_functions("nothing").empty());
}

TEST(SymbolTable, FunctionContainingUsesSizeAndExactAddressForSizeZero) {
  SymbolTable table({fn("a", 0x100, 0x10), fn("label", 0x200, 0), fn("c", 0x300, 0x10)});
  EXPECT_EQ(table.function_containing(0xff), nullptr);
  EXPECT_EQ(table.function_containing(0x100)->name, "a");
  EXPECT_EQ(table.function_containing(0x10f)->name, "a");
  EXPECT_EQ(table.function_containing(0x110), nullptr);
  EXPECT_EQ(table.function_containing(0x200)->name, "label");
  EXPECT_EQ(table.function_containing(0x201), nullptr);
  EXPECT_EQ(table.function_containing(0x30f)->name, "c");
  EXPECT_EQ(table.function_containing(0x310), nullptr);
}

TEST(SymbolTable, FunctionContainingSeesPastSmallerFunctionsInsideABigOne) {
  // "big" encloses "inner"; "tiny" sits after "inner" but still inside "big".
  SymbolTable table({fn("big", 0x1000, 0x1000), fn("inner", 0x1100, 0x10), fn("tiny", 0x1200, 1)});
  EXPECT_EQ(table.function_containing(0x1105)->name, "inner");
  EXPECT_EQ(table.function_containing(0x1180)->name, "big");
  EXPECT_EQ(table.function_containing(0x1fff)->name, "big");
  EXPECT_EQ(table.function_containing(0x2000), nullptr);
}

TEST(SymbolTable, FunctionContainingPrefersGlobalAliasThenFirstName) {
  SymbolTable table({fn("__libc_malloc", 0x100, 0x40, true), fn("malloc", 0x100, 0x40, true),
                     fn("_int_x", 0x100, 0x40, false)});
  EXPECT_EQ(table.function_containing(0x120)->name, "__libc_malloc");
  SymbolTable locals({fn("zeta", 0x100, 0x40, true), fn("alpha", 0x100, 0x40, false)});
  EXPECT_EQ(locals.function_containing(0x100)->name, "zeta");
}

TEST(SymbolTable, FunctionContainingEmptyTable) {
  SymbolTable table;
  EXPECT_EQ(table.function_containing(0x1000), nullptr);
  EXPECT_TRUE(table.function_names().empty());
}

TEST(SymbolTable, FunctionNamesAreDistinctAndSorted) {
  SymbolTable table(
      {fn("b", 0x100, 1), fn("a", 0x200, 1), fn("b", 0x300, 1, false), data("c", 0x400, 1)});
  EXPECT_EQ(table.function_names(), (std::vector<std::string_view>{"a", "b"}));
}

TEST(SymbolTable, SizedSymbolContainingFollowsBcc) {
  SymbolTable table({fn("outer", 0x100, 0x40), fn("inner", 0x110, 0x8), data("label", 0x120, 0),
                     fn("next", 0x140, 0x10), fn("next_local", 0x140, 0x10, false),
                     data("table", 0x200, 0x20), fn("lonely_label", 0x300, 0)});
  auto name_at = [&](uint64_t vaddr) -> std::string {
    const Symbol *s = table.sized_symbol_containing(vaddr);
    return s == nullptr ? "(none)" : s->name;
  };
  EXPECT_EQ(name_at(0x100), "outer");
  EXPECT_EQ(name_at(0x112), "inner");
  EXPECT_EQ(name_at(0x118), "outer"); // after the nested one ends
  EXPECT_EQ(name_at(0x120), "outer"); // a size-0 label names nothing
  EXPECT_EQ(name_at(0x13f), "outer");
  EXPECT_EQ(name_at(0x140), "next"); // global over a local alias
  EXPECT_EQ(name_at(0x150), "(none)");
  EXPECT_EQ(name_at(0x210), "table"); // data symbols count too
  EXPECT_EQ(name_at(0x220), "(none)");
  EXPECT_EQ(name_at(0x300), "(none)"); // unlike function_containing()
  EXPECT_EQ(table.function_containing(0x300)->name, "lonely_label");
  EXPECT_EQ(name_at(0xff), "(none)");
}

TEST(SymbolTable, SizedSymbolContainingPicksThePublicAlias) {
  SymbolTable kinds({data("d", 0x300, 8), fn("f", 0x300, 8, false)});
  EXPECT_EQ(kinds.sized_symbol_containing(0x304)->name, "f");
  SymbolTable names({fn("b", 0x400, 4), fn("a", 0x400, 4)});
  EXPECT_EQ(names.sized_symbol_containing(0x400)->name, "a");
  SymbolTable libc({fn("__GI___libc_malloc", 0x500, 8, false), fn("__malloc", 0x500, 8, false),
                    fn("__libc_malloc", 0x500, 8), fn("malloc", 0x500, 8)});
  EXPECT_EQ(libc.sized_symbol_containing(0x504)->name, "malloc");
  SymbolTable internal({fn("__write", 0x600, 8), fn("__GI___write", 0x600, 8, false)});
  EXPECT_EQ(internal.sized_symbol_containing(0x600)->name, "__write");
  SymbolTable empty;
  EXPECT_EQ(empty.sized_symbol_containing(0x400), nullptr);
}

} // namespace
} // namespace dprobe::elf
