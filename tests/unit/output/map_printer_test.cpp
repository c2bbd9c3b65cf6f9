// Expected texts were printed by bpftrace v0.17.0 on this machine (the command is in the comment
// above each; prog is a C program whose noinline work(i, i % 3, names[i % 6], -i) is called for
// i = 0..N-1, names = {"alpha", "beta", "gamma", "beta", "zeta", ""}).
#include "output/map_printer.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace dprobe::output {
namespace {

using bytecode::FieldKind;
using bytecode::MapSchema;
using bytecode::MapValueKind;
using KeyPart = std::variant<int64_t, std::string>;

std::string key(std::vector<KeyPart> parts) {
  std::string packed;
  for (const KeyPart& part : parts) {
    if (const auto* n = std::get_if<int64_t>(&part)) {
      uint8_t bytes[8];
      bytecode::store_u64_le(bytes, static_cast<uint64_t>(*n));
      packed.append(reinterpret_cast<const char*>(bytes), 8);
    } else {
      std::string field = std::get<std::string>(part);
      field.resize(bytecode::kStringFieldSize, '\0');
      packed += field;
    }
  }
  return packed;
}

MapSchema schema(std::string name, std::vector<FieldKind> keys, MapValueKind value,
                 bool is_signed = true) {
  MapSchema s;
  s.name = std::move(name);
  s.key = std::move(keys);
  s.value = value;
  s.value_signed = is_signed;
  return s;
}

TEST(MapPrinter, ScalarMaps) {
  // BEGIN { @a = 1; @b = -1; @c = count(); exit(); }  ->  "@a: 1", "@b: -1", "@c: 1"
  EXPECT_EQ(format_map(schema("@a", {}, MapValueKind::Int), {{"", 1}}), "@a: 1\n");
  EXPECT_EQ(format_map(schema("@b", {}, MapValueKind::Int), {{"", static_cast<uint64_t>(-1)}}),
            "@b: -1\n");
  EXPECT_EQ(format_map(schema("@c", {}, MapValueKind::Count, false), {{"", 1}}), "@c: 1\n");
  // uprobe:./prog:work /arg0 == 1/ { @a = arg0 - 5; }  (arg0 is unsigned)
  EXPECT_EQ(
      format_map(schema("@a", {}, MapValueKind::Int, false), {{"", static_cast<uint64_t>(-4)}}),
      "@a: 18446744073709551612\n");
}

TEST(MapPrinter, EmptyMaps) {
  // BEGIN { exit(); } uprobe:./prog:work { @a = count(); @b[1] = count(); @c = arg0; }
  // run without the program ever calling work():  "@a: 0", then an empty line for each of @b, @c
  EXPECT_EQ(format_map(schema("@a", {}, MapValueKind::Count, false), {}), "@a: 0\n");
  EXPECT_EQ(format_map(schema("@b", {FieldKind::Int}, MapValueKind::Count, false), {}), "\n");
  EXPECT_EQ(format_map(schema("@c", {}, MapValueKind::Int, false), {}), "\n");
}

TEST(MapPrinter, IntKeysSortedBySignedValue) {
  // BEGIN { @a[-5] = -3; @a[3] = 7; @a[10] = -10; exit(); }
  EXPECT_EQ(format_map(schema("@a", {FieldKind::Int}, MapValueKind::Int),
                       {{key({-5}), static_cast<uint64_t>(-3)},
                        {key({3}), 7},
                        {key({10}), static_cast<uint64_t>(-10)}}),
            "@a[10]: -10\n"
            "@a[-5]: -3\n"
            "@a[3]: 7\n");
}

TEST(MapPrinter, UnsignedValuesSortUnsigned) {
  // uprobe:./prog:work { @m[-arg0] = arg0 - 5; }  -c './prog 4'
  EXPECT_EQ(format_map(schema("@m", {FieldKind::Int}, MapValueKind::Int, false),
                       {{key({-2}), static_cast<uint64_t>(-3)},
                        {key({0}), static_cast<uint64_t>(-5)},
                        {key({-3}), static_cast<uint64_t>(-2)},
                        {key({-1}), static_cast<uint64_t>(-4)}}),
            "@m[0]: 18446744073709551611\n"
            "@m[-1]: 18446744073709551612\n"
            "@m[-2]: 18446744073709551613\n"
            "@m[-3]: 18446744073709551614\n");
}

TEST(MapPrinter, KeysPrintAsSignedInt64) {
  // BEGIN { @i[0xffffffffffffffff] = 1; exit(); }  ->  "@i[-1]: 1"
  EXPECT_EQ(format_map(schema("@i", {FieldKind::Int}, MapValueKind::Int), {{key({-1}), 1}}),
            "@i[-1]: 1\n");
}

TEST(MapPrinter, TupleKeys) {
  // BEGIN { @x[1, "a"] = 3; @x[2, "bb"] = 1; @y["k", 5] = 2; @z[1,2,3] = 4; exit(); }
  EXPECT_EQ(format_map(schema("@x", {FieldKind::Int, FieldKind::String}, MapValueKind::Int),
                       {{key({1, "a"}), 3}, {key({2, "bb"}), 1}}),
            "@x[2, bb]: 1\n"
            "@x[1, a]: 3\n");
  EXPECT_EQ(format_map(schema("@y", {FieldKind::String, FieldKind::Int}, MapValueKind::Int),
                       {{key({"k", 5}), 2}}),
            "@y[k, 5]: 2\n");
  EXPECT_EQ(
      format_map(schema("@z", {FieldKind::Int, FieldKind::Int, FieldKind::Int}, MapValueKind::Int),
                 {{key({1, 2, 3}), 4}}),
      "@z[1, 2, 3]: 4\n");
}

TEST(MapPrinter, StringKeyCounts) {
  // uprobe:./prog3:work { @s[str(arg2)] = count(); }  (values differ, so the order is fixed)
  // bpftrace printed "@s[]: 2" for the empty string key.
  EXPECT_EQ(format_map(schema("@s", {FieldKind::String}, MapValueKind::Count, false),
                       {{key({"beta"}), 3}, {key({""}), 2}, {key({"alpha"}), 1}}),
            "@s[alpha]: 1\n"
            "@s[]: 2\n"
            "@s[beta]: 3\n");
}

TEST(MapPrinter, AnonymousMap) {
  EXPECT_EQ(format_map(schema("@", {FieldKind::Int, FieldKind::String}, MapValueKind::Count, false),
                       {{key({2, "b"}), 2}, {key({1, "a"}), 1}}),
            "@[1, a]: 1\n"
            "@[2, b]: 2\n");
}

TEST(MapPrinter, TiesAreBrokenByKey) {
  // bpftrace prints equal values in the kernel hash table's order, which changes from run to run
  // (uprobe:./prog:work { @k[arg0] = count(); } printed 6 5 2 4 0 1 3 7, then 5 4 0 6 1 7 3 2).
  // dprobe sorts ties by key: ints numerically (as printed, signed), strings bytewise.
  EXPECT_EQ(format_map(schema("@k", {FieldKind::Int}, MapValueKind::Count, false),
                       {{key({6}), 1}, {key({-2}), 1}, {key({2}), 1}, {key({0}), 5}}),
            "@k[-2]: 1\n"
            "@k[2]: 1\n"
            "@k[6]: 1\n"
            "@k[0]: 5\n");
  EXPECT_EQ(
      format_map(schema("@s", {FieldKind::String, FieldKind::Int}, MapValueKind::Count, false),
                 {{key({"zeta", 1}), 1},
                  {key({"", 9}), 1},
                  {key({"alpha", 2}), 1},
                  {key({"alpha", 1}), 1}}),
      "@s[, 9]: 1\n"
      "@s[alpha, 1]: 1\n"
      "@s[alpha, 2]: 1\n"
      "@s[zeta, 1]: 1\n");
}

} // namespace
} // namespace dprobe::output
