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
  for (const Symbol& s : symbols) names.push_back(s.name);
  return names;
}
std::vector<std::string> names_of(const std::vector<const Symbol*>& symbols) {
  std::vector<std::string> names;
  for (const Symbol* s : symbols) names.push_back(s->name);
  return names;
}

TEST(SymbolTable, SortsByAddressThenNameAndSplitsFunctions) {
  SymbolTable table({fn("b", 0x300, 4), data("counter", 0x100, 8), fn("a", 0x300, 4),
                     fn("main", 0x200, 16)});
  EXPECT_EQ(names_of(table.all_symbols()),
            (std::vector<std::string>{"counter", "main", "a", "b"}));
  EXPECT_EQ(names_of(table.functions()), (std::vector<std::string>{"main", "a", "b"}));
}

TEST(SymbolTable, DropsUnnamedAndZeroAddress) {
  SymbolTable table({fn("", 0x100, 4), fn("weak_undefined", 0, 0), fn("main", 0x200, 4)});
  EXPECT_EQ(names_of(table.all_symbols()), (std::vector<std::string>{"main"}));
}

TEST(SymbolTable, MergesSameNameAndAddressFromBothTables) {
  // .symtab says NOTYPE/local with no size, .dynsym says FUNC/global with a size.
  SymbolTable table({data("work", 0x1000, 0, false), fn("work", 0x1000, 32, true),
                     fn("work", 0x2000, 8, false)});
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

TEST(SymbolTable, MatchFunctionsOnePerNameSortedByName) {
  SymbolTable table({fn("parse_b", 0x100, 8), fn("parse_a", 0x200, 8),
                     fn("parse_a", 0x300, 8, false), fn("print", 0x400, 8),
                     data("parse_data", 0x500, 8)});
  std::vector<const Symbol*> matches = table.match_functions("parse_*");
  EXPECT_EQ(names_of(matches), (std::vector<std::string>{"parse_a", "parse_b"}));
  EXPECT_EQ(matches[0]->address, 0x200u);  // the global one, as find_function picks
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
  SymbolTable table({fn("b", 0x100, 1), fn("a", 0x200, 1), fn("b", 0x300, 1, false),
                     data("c", 0x400, 1)});
  EXPECT_EQ(table.function_names(), (std::vector<std::string_view>{"a", "b"}));
}

}  // namespace
}  // namespace dprobe::elf
