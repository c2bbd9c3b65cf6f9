#include "lang/attach_point.h"

#include <gtest/gtest.h>

namespace dprobe::lang {
namespace {

AttachPoint parse_ok(std::string_view raw) {
  AttachPoint ap{};
  const std::optional<std::string> error = parse_attach_point(raw, ap);
  EXPECT_FALSE(error.has_value()) << raw << ": " << error.value_or("");
  return ap;
}

std::string parse_error(std::string_view raw) {
  AttachPoint ap{};
  return parse_attach_point(raw, ap).value_or("<no error>");
}

TEST(AttachPoint, UprobeForms) {
  AttachPoint ap = parse_ok("uprobe:./loop:work");
  EXPECT_EQ(ap.kind, ProbeKind::Uprobe);
  EXPECT_EQ(ap.raw, "uprobe:./loop:work");
  EXPECT_EQ(ap.path, "./loop");
  EXPECT_EQ(ap.symbol, "work");
  EXPECT_EQ(ap.offset, 0u);
  EXPECT_FALSE(ap.address.has_value());

  ap = parse_ok("u:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc+16");
  EXPECT_EQ(ap.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_EQ(ap.symbol, "malloc");
  EXPECT_EQ(ap.offset, 16u);

  ap = parse_ok("uprobe:./a-b_c+d.e:_Z4workl+0x1f");
  EXPECT_EQ(ap.path, "./a-b_c+d.e");
  EXPECT_EQ(ap.symbol, "_Z4workl");
  EXPECT_EQ(ap.offset, 0x1fu);

  ap = parse_ok("uprobe:./loop:0x401136");
  EXPECT_TRUE(ap.symbol.empty());
  EXPECT_EQ(ap.address, std::optional<uint64_t>(0x401136));

  ap = parse_ok("uprobe:./loop:4198710");
  EXPECT_EQ(ap.address, std::optional<uint64_t>(4198710));
}

TEST(AttachPoint, ReturnProbes) {
  AttachPoint ap = parse_ok("uretprobe:./loop:work");
  EXPECT_EQ(ap.kind, ProbeKind::Uprobe);
  EXPECT_TRUE(ap.is_return);
  EXPECT_EQ(ap.raw, "uretprobe:./loop:work");
  EXPECT_EQ(ap.path, "./loop");
  EXPECT_EQ(ap.symbol, "work");

  ap = parse_ok("ur:./loop:wor*");
  EXPECT_TRUE(ap.is_return);
  EXPECT_EQ(ap.symbol, "wor*");

  // The same AttachPoint object reused for an entry probe forgets the flag.
  EXPECT_EQ(parse_attach_point("uprobe:./loop:work", ap), std::nullopt);
  EXPECT_FALSE(ap.is_return);

  EXPECT_EQ(parse_error("uretprobe:./loop:work+4"),
            "uretprobe takes no offset: it probes every exit of 'work'");
  EXPECT_EQ(parse_error("ur:./loop:0x401136"),
            "ur needs a function name, not an address: ur:PATH:FUNCTION");
  EXPECT_EQ(parse_error("uretprobe:work"),
            "uretprobe needs a path and a symbol: uretprobe:PATH:SYMBOL");
  EXPECT_EQ(refuse_provider("ur"), std::nullopt);
  EXPECT_EQ(refuse_provider("uretprobe"), std::nullopt);
}

TEST(AttachPoint, PathUpToTheLastColon) {
  const AttachPoint ap = parse_ok("uprobe:/opt/odd:name/bin:func");
  EXPECT_EQ(ap.path, "/opt/odd:name/bin");
  EXPECT_EQ(ap.symbol, "func");
}

TEST(AttachPoint, QuotesProtectColonsAndSpaces) {
  const AttachPoint ap = parse_ok(R"(uprobe:"/tmp/my dir/a:b":work)");
  EXPECT_EQ(ap.path, "/tmp/my dir/a:b");
  EXPECT_EQ(ap.symbol, "work");
}

TEST(AttachPoint, BeginEnd) {
  EXPECT_EQ(parse_ok("BEGIN").kind, ProbeKind::Begin);
  EXPECT_EQ(parse_ok("END").kind, ProbeKind::End);
  EXPECT_EQ(parse_error("BEGIN:x"), "BEGIN probes take no arguments");
  EXPECT_EQ(parse_error("END:a:b"), "END probes take no arguments");
}

TEST(AttachPoint, Interval) {
  AttachPoint ap = parse_ok("interval:s:2");
  EXPECT_EQ(ap.kind, ProbeKind::Interval);
  EXPECT_EQ(ap.interval_ns, 2'000'000'000u);
  EXPECT_EQ(parse_ok("interval:ms:100").interval_ns, 100'000'000u);
  EXPECT_EQ(parse_ok("i:us:250").interval_ns, 250'000u);
  EXPECT_EQ(parse_ok("interval:hz:4").interval_ns, 250'000'000u);
  EXPECT_EQ(parse_ok("interval:hz:3").interval_ns, 333'333'333u);
}

TEST(AttachPoint, IntervalErrors) {
  EXPECT_EQ(parse_error("interval:ms"), "interval probe type requires 2 arguments");
  EXPECT_EQ(parse_error("interval:1s"), "interval probe type requires 2 arguments");
  EXPECT_EQ(parse_error("interval:s:1:2"), "interval probe type requires 2 arguments");
  EXPECT_EQ(parse_error("interval:ns:100"), "ns is not an accepted unit of time");
  EXPECT_EQ(parse_error("interval:ms:abc"),
            "invalid interval count 'abc': expected a decimal number");
  EXPECT_EQ(parse_error("interval:ms:0x10"),
            "invalid interval count '0x10': expected a decimal number");
  EXPECT_EQ(parse_error("interval:ms:-1"),
            "invalid interval count '-1': expected a decimal number");
  EXPECT_EQ(parse_error("interval:ms:0"), "interval count must be at least 1, not '0'");
  EXPECT_EQ(parse_error("interval:s:99999999999999999999"),
            "invalid interval count '99999999999999999999': expected a decimal number");
  EXPECT_EQ(parse_error("interval:s:18446744074"), "interval '18446744074s' is too long");
  EXPECT_EQ(parse_error("interval:hz:2000000000"), "interval rate 2000000000 hz is above 1 GHz");
}

TEST(AttachPoint, RefuseProvider) {
  for (const char* ok : {"uprobe", "u", "BEGIN", "END", "interval", "i"}) {
    EXPECT_FALSE(refuse_provider(ok).has_value()) << ok;
  }
  EXPECT_EQ(refuse_provider("t").value_or(""),
            "kernel-only probe type 't': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
  EXPECT_EQ(refuse_provider("usdt").value_or(""), "probe type 'usdt' is not supported yet");
  EXPECT_EQ(refuse_provider("uprob").value_or(""), "unknown probe type 'uprob'");
}

TEST(AttachPoint, Errors) {
  EXPECT_EQ(parse_error("uprobe"), "uprobe needs a path and a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop"), "uprobe needs a path and a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe::work"), "uprobe needs a path: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:"), "uprobe needs a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:+4"), "uprobe needs a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:work+"), "invalid offset ''");
  EXPECT_EQ(parse_error("uprobe:./loop:work+0xg"), "invalid offset '0xg'");
  EXPECT_EQ(parse_error("uprobe:./loop:0x12zz"), "invalid address '0x12zz'");
  EXPECT_EQ(parse_ok("uprobe:./loop:work*").symbol, "work*");
  EXPECT_EQ(parse_ok("u:./loop:*or?").symbol, "*or?");
  EXPECT_EQ(parse_error("uprobe:./loop:work*+4"), "an offset cannot follow a wildcard: 'work*+4'");
  EXPECT_EQ(parse_error("uprobe:./loop:w[a-z]rk"),
            "character classes are not supported in symbols: 'w[a-z]rk'");
  EXPECT_EQ(parse_error("kprobe:do_sys_open"),
            "kernel-only probe type 'kprobe': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
  EXPECT_EQ(parse_error("tracepoint:syscalls:sys_enter_open"),
            "kernel-only probe type 'tracepoint': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
  EXPECT_EQ(parse_error("kr:f"), "kernel-only probe type 'kr': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
  EXPECT_EQ(parse_error("usdt:./loop:p:x"), "probe type 'usdt' is not supported yet");
  EXPECT_EQ(parse_error("begin"), "unknown probe type 'begin'");
}

} // namespace
} // namespace dprobe::lang
