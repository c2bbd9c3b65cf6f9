// Expected lines were printed by bpftrace v0.17.0 -f json on this machine (the script is in the
// comment above each).
#include "output/json_printer.h"

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

TEST(JsonPrinter, Events) {
  EXPECT_EQ(json_attached_probes(2),
            "{\"type\": \"attached_probes\", \"data\": {\"probes\": 2}}\n");
  // BEGIN { printf("hi %d\n", 5); }
  EXPECT_EQ(json_printf("hi 5\n"), "{\"type\": \"printf\", \"data\": \"hi 5\\n\"}\n");
}

TEST(JsonPrinter, Escapes) {
  // BEGIN { printf("a\tb\"c\\d\re\x01f\n"); }
  EXPECT_EQ(json_escape("a\tb\"c\\d\re\x01"
                        "f\n"),
            "a\\tb\\\"c\\\\d\\re\\u0001f\\n");
  EXPECT_EQ(json_escape(std::string("\0\x1f", 2)), "\\u0000\\u001f");
  EXPECT_EQ(json_escape("caf\xc3\xa9 ~\x7f"), "caf\xc3\xa9 ~\x7f");
}

TEST(JsonPrinter, ScalarMaps) {
  // BEGIN { @a = count(); @d = 3; @e = -4; exit(); }
  EXPECT_EQ(format_map_json(schema("@a", {}, MapValueKind::Count, false), {{"", 1}}),
            "{\"type\": \"map\", \"data\": {\"@a\": 1}}\n");
  EXPECT_EQ(format_map_json(schema("@d", {}, MapValueKind::Int), {{"", 3}}),
            "{\"type\": \"map\", \"data\": {\"@d\": 3}}\n");
  EXPECT_EQ(format_map_json(schema("@e", {}, MapValueKind::Int), {{"", static_cast<uint64_t>(-4)}}),
            "{\"type\": \"map\", \"data\": {\"@e\": -4}}\n");
  EXPECT_EQ(format_map_json(schema("@u", {}, MapValueKind::Int, false),
                            {{"", static_cast<uint64_t>(-4)}}),
            "{\"type\": \"map\", \"data\": {\"@u\": 18446744073709551612}}\n");
  // A keyless count map never hit still has its 0, as in the text output.
  EXPECT_EQ(format_map_json(schema("@z", {}, MapValueKind::Count, false), {}),
            "{\"type\": \"map\", \"data\": {\"@z\": 0}}\n");
  EXPECT_EQ(format_map_json(schema("@i", {}, MapValueKind::Int), {}), "");
}

TEST(JsonPrinter, KeyedMaps) {
  // BEGIN { @b[1, "x"] = count(); @b[2, "y"] = count(); @b[2, "y"] = count(); exit(); }
  EXPECT_EQ(
      format_map_json(schema("@b", {FieldKind::Int, FieldKind::String}, MapValueKind::Count, false),
                      {{key({2, "y"}), 2}, {key({1, "x"}), 1}}),
      "{\"type\": \"map\", \"data\": {\"@b\": {\"1,x\": 1, \"2,y\": 2}}}\n");
  // uprobe:./loop:work { @[arg0 % 3] = count(); } with loop 10: sorted by value.
  EXPECT_EQ(format_map_json(schema("@", {FieldKind::Int}, MapValueKind::Count, false),
                            {{key({0}), 4}, {key({2}), 3}}),
            "{\"type\": \"map\", \"data\": {\"@\": {\"2\": 3, \"0\": 4}}}\n");
  // BEGIN { @y["a\"b"] = count(); exit(); }
  EXPECT_EQ(format_map_json(schema("@y", {FieldKind::String}, MapValueKind::Count, false),
                            {{key({"a\"b"}), 1}}),
            "{\"type\": \"map\", \"data\": {\"@y\": {\"a\\\"b\": 1}}}\n");
  // BEGIN { @x[1] = count(); delete(@x[1]); exit(); }: an empty map prints nothing.
  EXPECT_EQ(format_map_json(schema("@x", {FieldKind::Int}, MapValueKind::Count, false), {}), "");
}

} // namespace
} // namespace dprobe::output

namespace dprobe::output {
namespace {

std::vector<uint64_t> buckets_with(size_t n, std::vector<std::pair<size_t, uint64_t>> set) {
  std::vector<uint64_t> b(n, 0);
  for (auto [i, v] : set)
    b[i] = v;
  return b;
}

MapEntry entry_of(std::string key, const std::vector<uint64_t>& words) {
  return MapEntry{std::move(key), words.front(),
                  std::vector<uint64_t>(words.begin() + 1, words.end())};
}

TEST(JsonPrinter, SumMinMax) {
  // BEGIN { @s2 = sum(-3); @mn = min(4); @mn2[1] = min(-5); @mx2 = max(3); exit(); }
  EXPECT_EQ(format_map_json(schema("@s2", {}, MapValueKind::Sum), {{"", static_cast<uint64_t>(-3)}}),
            "{\"type\": \"map\", \"data\": {\"@s2\": -3}}\n");
  EXPECT_EQ(format_map_json(schema("@mn", {}, MapValueKind::Min), {{"", 0xffffffffull - 4}}),
            "{\"type\": \"map\", \"data\": {\"@mn\": 4}}\n");
  EXPECT_EQ(format_map_json(schema("@mn2", {FieldKind::Int}, MapValueKind::Min),
                            {{key({1}), 0xffffffffull + 5}}),
            "{\"type\": \"map\", \"data\": {\"@mn2\": {\"1\": -5}}}\n");
  EXPECT_EQ(format_map_json(schema("@mx2", {}, MapValueKind::Max), {{"", 3}}),
            "{\"type\": \"map\", \"data\": {\"@mx2\": 3}}\n");
  // Never set: nothing (only a keyless count map shows its 0).
  EXPECT_EQ(format_map_json(schema("@s", {}, MapValueKind::Sum), {}), "");
}

TEST(JsonPrinter, AvgAndStats) {
  // BEGIN { @a = avg(7); @a2[1] = avg(3); @st = stats(4); @st = stats(9);
  //   @st2[5] = stats(10); @st2[-3] = stats(1); exit(); }
  EXPECT_EQ(format_map_json(schema("@a", {}, MapValueKind::Avg), {{"", 1, {7}}}),
            "{\"type\": \"stats\", \"data\": {\"@a\": 7}}\n");
  EXPECT_EQ(format_map_json(schema("@a2", {FieldKind::Int}, MapValueKind::Avg), {{key({1}), 1, {3}}}),
            "{\"type\": \"stats\", \"data\": {\"@a2\": {\"1\": 3}}}\n");
  EXPECT_EQ(format_map_json(schema("@st", {}, MapValueKind::Stats), {{"", 2, {13}}}),
            "{\"type\": \"stats\", \"data\": {\"@st\": {\"count\": 2, \"average\": 6, "
            "\"total\": 13}}}\n");
  EXPECT_EQ(format_map_json(schema("@st2", {FieldKind::Int}, MapValueKind::Stats),
                            {{key({5}), 1, {10}}, {key({-3}), 1, {1}}}),
            "{\"type\": \"stats\", \"data\": {\"@st2\": {\"-3\": {\"count\": 1, \"average\": 1, "
            "\"total\": 1}, \"5\": {\"count\": 1, \"average\": 10, \"total\": 10}}}}\n");
  // zero(@st): the entry stays with zeros.
  EXPECT_EQ(format_map_json(schema("@st", {}, MapValueKind::Stats), {{"", 0, {0}}}),
            "{\"type\": \"stats\", \"data\": {\"@st\": {\"count\": 0, \"average\": 0, "
            "\"total\": 0}}}\n");
}

TEST(JsonPrinter, Hist) {
  // BEGIN { @h = hist(-3); @h = hist(0); @h = hist(5); exit(); }: empty buckets between shown.
  const MapSchema h = schema("@h", {}, MapValueKind::Hist);
  EXPECT_EQ(format_map_json(h, {entry_of("", buckets_with(bytecode::kHistBuckets,
                                                          {{0, 1}, {1, 1}, {4, 1}}))}),
            "{\"type\": \"hist\", \"data\": {\"@h\": [{\"max\": -1, \"count\": 1}, {\"min\": 0, "
            "\"max\": 0, \"count\": 1}, {\"min\": 1, \"max\": 1, \"count\": 0}, {\"min\": 2, "
            "\"max\": 3, \"count\": 0}, {\"min\": 4, \"max\": 7, \"count\": 1}]}}\n");
  // BEGIN { @hb = hist(3000000000); exit(); }: bpftrace's 32-bit bounds of the last bucket.
  EXPECT_EQ(format_map_json(h, {entry_of("", buckets_with(bytecode::kHistBuckets, {{33, 2}}))}),
            "{\"type\": \"hist\", \"data\": {\"@h\": [{\"min\": -2147483648, \"max\": 0, "
            "\"count\": 2}]}}\n");
  // zero(@h): every bucket 0 shows as [].
  EXPECT_EQ(format_map_json(h, {entry_of("", buckets_with(bytecode::kHistBuckets, {}))}),
            "{\"type\": \"hist\", \"data\": {\"@h\": []}}\n");
  // Keyed: ordered by the sum of the buckets.
  const MapSchema hk = schema("@h2", {FieldKind::String, FieldKind::Int}, MapValueKind::Hist);
  EXPECT_EQ(format_map_json(hk, {entry_of(key({"j", 4}), buckets_with(bytecode::kHistBuckets,
                                                                       {{2, 2}})),
                                 entry_of(key({"k", 3}), buckets_with(bytecode::kHistBuckets,
                                                                       {{8, 1}}))}),
            "{\"type\": \"hist\", \"data\": {\"@h2\": {\"k,3\": [{\"min\": 64, \"max\": 127, "
            "\"count\": 1}], \"j,4\": [{\"min\": 1, \"max\": 1, \"count\": 2}]}}}\n");
}

TEST(JsonPrinter, Lhist) {
  // BEGIN { @l = lhist(2, 10, 30, 5); @l = lhist(17, 10, 30, 5); @l = lhist(30, 10, 30, 5);
  //   @l = lhist(99, 10, 30, 5); exit(); }
  MapSchema l = schema("@l", {}, MapValueKind::Lhist);
  l.lhist_min = 10;
  l.lhist_max = 30;
  l.lhist_step = 5;
  EXPECT_EQ(format_map_json(l, {entry_of("", buckets_with(6, {{0, 1}, {2, 1}, {5, 2}}))}),
            "{\"type\": \"hist\", \"data\": {\"@l\": [{\"max\": 9, \"count\": 1}, {\"min\": 10, "
            "\"max\": 14, \"count\": 0}, {\"min\": 15, \"max\": 19, \"count\": 1}, {\"min\": 20, "
            "\"max\": 24, \"count\": 0}, {\"min\": 25, \"max\": 29, \"count\": 0}, {\"min\": 30, "
            "\"count\": 2}]}}\n");
  EXPECT_EQ(format_map_json(l, {entry_of("", buckets_with(6, {{3, 4}}))}),
            "{\"type\": \"hist\", \"data\": {\"@l\": [{\"min\": 20, \"max\": 24, \"count\": 4}]}}\n");
}

TEST(JsonPrinter, StringMapsAndEvents) {
  // BEGIN { @u[2] = "x"; @u[1] = "y"; @t = "hi\tthere"; exit(); }
  EXPECT_EQ(format_string_map_json(schema("@u", {FieldKind::Int}, MapValueKind::String),
                                   {{key({2}), "x"}, {key({1}), "y"}}),
            "{\"type\": \"map\", \"data\": {\"@u\": {\"1\": \"y\", \"2\": \"x\"}}}\n");
  EXPECT_EQ(format_string_map_json(schema("@t", {}, MapValueKind::String), {{"", "hi\tthere"}}),
            "{\"type\": \"map\", \"data\": {\"@t\": \"hi\\tthere\"}}\n");
  EXPECT_EQ(format_string_map_json(schema("@e", {FieldKind::Int}, MapValueKind::String), {}), "");
  // BEGIN { print(-3); print("str\"x"); time("%Y\n"); system("printf abc"); }
  EXPECT_EQ(json_print_value("-3", false), "{\"type\": \"value\", \"data\": -3}\n");
  EXPECT_EQ(json_print_value("str\"x", true), "{\"type\": \"value\", \"data\": \"str\\\"x\"}\n");
  EXPECT_EQ(json_event("time", "2026\n"), "{\"type\": \"time\", \"data\": \"2026\\n\"}\n");
  EXPECT_EQ(json_event("syscall", "abc"), "{\"type\": \"syscall\", \"data\": \"abc\"}\n");
}

} // namespace
} // namespace dprobe::output
