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

// --- aggregations ------------------------------------------------------------------------------
// Texts below were printed by bpftrace v0.17.0 for uprobe:/tmp/loop:work, where loop N calls
// work(i) for i = 0..N-1 (tests/targets/loop.c); the values are built from the same inputs with
// the bucket functions the hosts use.

MapSchema agg_schema(std::string name, std::vector<FieldKind> keys, MapValueKind kind,
                     bool is_signed = false) {
  MapSchema s = schema(std::move(name), std::move(keys), kind, is_signed);
  return s;
}

MapEntry hist_of(std::string packed_key, const std::vector<int64_t>& inputs) {
  std::vector<uint64_t> words(bytecode::kHistBuckets, 0);
  for (int64_t x : inputs)
    ++words[bytecode::hist_bucket(static_cast<uint64_t>(x))];
  return MapEntry{std::move(packed_key), words[0], {words.begin() + 1, words.end()}};
}

MapEntry lhist_of(std::string packed_key, const std::vector<int64_t>& inputs, int64_t min,
                  int64_t max, int64_t step) {
  std::vector<uint64_t> words(bytecode::lhist_buckets(min, max, step), 0);
  for (int64_t x : inputs)
    ++words[bytecode::lhist_bucket(static_cast<uint64_t>(x), min, max, step)];
  return MapEntry{std::move(packed_key), words[0], {words.begin() + 1, words.end()}};
}

MapEntry avg_of(std::string packed_key, const std::vector<int64_t>& inputs) {
  int64_t total = 0;
  for (int64_t x : inputs)
    total += x;
  return MapEntry{std::move(packed_key), inputs.size(), {static_cast<uint64_t>(total)}};
}

std::vector<int64_t> range(int64_t n, int64_t (*f)(int64_t), int64_t modulo = 0,
                           int64_t rest = 0) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (modulo == 0 || i % modulo == rest) out.push_back(f(i));
  }
  return out;
}

TEST(MapPrinter, HistWithNegativeAndZeroBuckets) {
  // @h = hist(arg0 - 5); loop 50
  EXPECT_EQ(format_map(agg_schema("@h", {}, MapValueKind::Hist),
                       {hist_of("", range(50, [](int64_t i) { return i - 5; }))}),
            "@h: \n"
            "(..., 0)               5 |@@@@@@@@@@@@@@@@                                    |\n"
            "[0]                    1 |@@@                                                 |\n"
            "[1]                    1 |@@@                                                 |\n"
            "[2, 4)                 2 |@@@@@@                                              |\n"
            "[4, 8)                 4 |@@@@@@@@@@@@@                                       |\n"
            "[8, 16)                8 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[16, 32)              16 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[32, 64)              13 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@          |\n"
            "\n");
}

TEST(MapPrinter, KeyedHistsSortByTotalThenKeyAndKeepInnerZeroBuckets) {
  // @hk[arg0 % 3] = hist(arg0); loop 50: totals 17, 17, 16
  const auto identity = [](int64_t i) { return i; };
  EXPECT_EQ(format_map(agg_schema("@hk", {FieldKind::Int}, MapValueKind::Hist),
                       {hist_of(key({0}), range(50, identity, 3, 0)),
                        hist_of(key({1}), range(50, identity, 3, 1)),
                        hist_of(key({2}), range(50, identity, 3, 2))}),
            "@hk[2]: \n"
            "[2, 4)                 1 |@@@@@@@@                                            |\n"
            "[4, 8)                 1 |@@@@@@@@                                            |\n"
            "[8, 16)                3 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[16, 32)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@         |\n"
            "[32, 64)               6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n"
            "@hk[0]: \n"
            "[0]                    1 |@@@@@@@@                                            |\n"
            "[1]                    0 |                                                    |\n"
            "[2, 4)                 1 |@@@@@@@@                                            |\n"
            "[4, 8)                 1 |@@@@@@@@                                            |\n"
            "[8, 16)                3 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[16, 32)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@         |\n"
            "[32, 64)               6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n"
            "@hk[1]: \n"
            "[1]                    1 |@@@@@@@@                                            |\n"
            "[2, 4)                 0 |                                                    |\n"
            "[4, 8)                 2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[8, 16)                2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[16, 32)               6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[32, 64)               6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n");
}

TEST(MapPrinter, HistLabelsWithSuffixes) {
  // @big = hist(arg0 << 35); loop 40: 0 once, the rest in bpftrace's last bucket
  const std::string text = format_map(agg_schema("@big", {}, MapValueKind::Hist),
                                      {hist_of("", range(40, [](int64_t i) { return i << 35; }))});
  EXPECT_NE(text.find("\n[512, 1K)              0 |"), std::string::npos) << text;
  EXPECT_NE(text.find("\n[128K, 256K)           0 |"), std::string::npos) << text;
  EXPECT_NE(text.find("\n[512M, 1G)             0 |"), std::string::npos) << text;
  EXPECT_NE(
      text.find(
          "\n[2G, 4G)              39 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"),
      std::string::npos)
      << text;
  EXPECT_EQ(text.substr(0, 87),
            "@big: \n[0]                    1 |@                                                   |\n");
}

MapSchema lhist_schema(std::string name, std::vector<FieldKind> keys, int64_t min, int64_t max,
                       int64_t step) {
  MapSchema s = agg_schema(std::move(name), std::move(keys), MapValueKind::Lhist);
  s.lhist_min = min;
  s.lhist_max = max;
  s.lhist_step = step;
  return s;
}

TEST(MapPrinter, LhistWithOutOfRangeBuckets) {
  // @l1 = lhist(arg0 - 10, 0, 10, 3); loop 20: 9 lands in the last bucket, labelled by max
  EXPECT_EQ(format_map(lhist_schema("@l1", {}, 0, 10, 3),
                       {lhist_of("", range(20, [](int64_t i) { return i - 10; }), 0, 10, 3)}),
            "@l1: \n"
            "(..., 0)              10 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[0, 3)                 3 |@@@@@@@@@@@@@@@                                     |\n"
            "[3, 6)                 3 |@@@@@@@@@@@@@@@                                     |\n"
            "[6, 9)                 3 |@@@@@@@@@@@@@@@                                     |\n"
            "[10, ...)              1 |@@@@@                                               |\n"
            "\n");
  // @l2 = lhist(arg0, 0, 3000000, 1048576); loop 20
  EXPECT_EQ(format_map(lhist_schema("@l2", {}, 0, 3000000, 1048576),
                       {lhist_of("", range(20, [](int64_t i) { return i; }), 0, 3000000, 1048576)}),
            "@l2: \n"
            "[0, 1M)               20 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n");
}

TEST(MapPrinter, KeyedLhists) {
  // @lh[arg0 % 2] = lhist(arg0 * 7, 20, 200, 20); loop 40
  const auto seven = [](int64_t i) { return i * 7; };
  EXPECT_EQ(format_map(lhist_schema("@lh", {FieldKind::Int}, 20, 200, 20),
                       {lhist_of(key({1}), range(40, seven, 2, 1), 20, 200, 20),
                        lhist_of(key({0}), range(40, seven, 2, 0), 20, 200, 20)}),
            "@lh[0]: \n"
            "(..., 20)              2 |@@@@@@@@@@@@@@@@@@@@                                |\n"
            "[20, 40)               1 |@@@@@@@@@@                                          |\n"
            "[40, 60)               2 |@@@@@@@@@@@@@@@@@@@@                                |\n"
            "[60, 80)               1 |@@@@@@@@@@                                          |\n"
            "[80, 100)              2 |@@@@@@@@@@@@@@@@@@@@                                |\n"
            "[100, 120)             1 |@@@@@@@@@@                                          |\n"
            "[120, 140)             1 |@@@@@@@@@@                                          |\n"
            "[140, 160)             2 |@@@@@@@@@@@@@@@@@@@@                                |\n"
            "[160, 180)             1 |@@@@@@@@@@                                          |\n"
            "[180, 200)             2 |@@@@@@@@@@@@@@@@@@@@                                |\n"
            "[200, ...)             5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n"
            "@lh[1]: \n"
            "(..., 20)              1 |@@@@@@@@                                            |\n"
            "[20, 40)               2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[40, 60)               1 |@@@@@@@@                                            |\n"
            "[60, 80)               2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[80, 100)              1 |@@@@@@@@                                            |\n"
            "[100, 120)             2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[120, 140)             1 |@@@@@@@@                                            |\n"
            "[140, 160)             1 |@@@@@@@@                                            |\n"
            "[160, 180)             2 |@@@@@@@@@@@@@@@@@                                   |\n"
            "[180, 200)             1 |@@@@@@@@                                            |\n"
            "[200, ...)             6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n");
}

TEST(MapPrinter, StatsAndAvgSortByAverage) {
  // @sk[arg0 % 3] = stats(arg0 * 1000); @a = avg(arg0 - 30); loop 50 and 20
  const auto thousand = [](int64_t i) { return i * 1000; };
  EXPECT_EQ(format_map(agg_schema("@sk", {FieldKind::Int}, MapValueKind::Stats),
                       {avg_of(key({0}), range(50, thousand, 3, 0)),
                        avg_of(key({1}), range(50, thousand, 3, 1)),
                        avg_of(key({2}), range(50, thousand, 3, 2))}),
            "@sk[0]: count 17, average 24000, total 408000\n"
            "@sk[2]: count 16, average 24500, total 392000\n"
            "@sk[1]: count 17, average 25000, total 425000\n"
            "\n");
  EXPECT_EQ(format_map(agg_schema("@a1", {}, MapValueKind::Avg),
                       {avg_of("", range(20, [](int64_t i) { return i - 30; }))}),
            "@a1: -20\n\n");
  EXPECT_EQ(format_map(agg_schema("@s1", {}, MapValueKind::Stats),
                       {avg_of("", range(20, [](int64_t i) { return i - 30; }))}),
            "@s1: count 20, average -20, total -410\n\n");
}

TEST(MapPrinter, MinAndMaxAreSignedAndSortByValue) {
  // @mk[arg0 % 3] = min(arg0): 0 1 2;  @mnn = min(0 - arg0): -49 (loop 50)
  const auto stored = [](int64_t v) { return bytecode::kMinInverseBase - static_cast<uint64_t>(v); };
  EXPECT_EQ(format_map(agg_schema("@mk", {FieldKind::Int}, MapValueKind::Min),
                       {{key({2}), stored(2)}, {key({0}), stored(0)}, {key({1}), stored(1)}}),
            "@mk[0]: 0\n@mk[1]: 1\n@mk[2]: 2\n");
  EXPECT_EQ(format_map(agg_schema("@mnn", {}, MapValueKind::Min), {{"", stored(-49)}}),
            "@mnn: -49\n");
  // zero(@m) of a min map prints 0 in bpftrace 0.17, not 0xffffffff.
  EXPECT_EQ(format_map(agg_schema("@m", {}, MapValueKind::Min), {{"", 0}}), "@m: 0\n");
  EXPECT_EQ(format_map(agg_schema("@xk", {FieldKind::Int}, MapValueKind::Max),
                       {{key({0}), 39000}, {key({1}), 37000}, {key({2}), 38000}}),
            "@xk[1]: 37000\n@xk[2]: 38000\n@xk[0]: 39000\n");
  // max() of negative values only never creates an entry: the map prints empty.
  EXPECT_EQ(format_map(agg_schema("@mx", {}, MapValueKind::Max), {}), "\n");
}

TEST(MapPrinter, SumsFollowTheirValuesSignedness) {
  // @e = sum(0 - arg0) (unsigned); @s2 = sum(-4) (signed)
  EXPECT_EQ(format_map(agg_schema("@e", {}, MapValueKind::Sum, false), {{"", static_cast<uint64_t>(-780)}}),
            "@e: 18446744073709550836\n");
  EXPECT_EQ(format_map(agg_schema("@s2", {}, MapValueKind::Sum, true), {{"", static_cast<uint64_t>(-80)}}),
            "@s2: -80\n");
}

TEST(MapPrinter, EmptyAndZeroedAggregations) {
  // BEGIN { @h = hist(5); clear(@h); print(@h); ... }: one empty line for hist and lhist maps,
  // two for avg and stats maps; a zeroed hist keeps its heading.
  EXPECT_EQ(format_map(agg_schema("@h", {}, MapValueKind::Hist), {}), "\n");
  EXPECT_EQ(format_map(agg_schema("@s", {FieldKind::Int}, MapValueKind::Stats), {}), "\n\n");
  EXPECT_EQ(format_map(agg_schema("@a", {}, MapValueKind::Avg), {}), "\n\n");
  EXPECT_EQ(format_map(agg_schema("@h", {}, MapValueKind::Hist), {hist_of("", {})}), "@h: \n\n");
  EXPECT_EQ(format_map(agg_schema("@s", {}, MapValueKind::Stats), {avg_of("", {})}),
            "@s: count 0, average 0, total 0\n\n");
}

} // namespace
} // namespace dprobe::output
