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
