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

TEST(AttachPoint, Errors) {
  EXPECT_EQ(parse_error("uprobe"), "uprobe needs a path and a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop"), "uprobe needs a path and a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe::work"), "uprobe needs a path: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:"), "uprobe needs a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:+4"), "uprobe needs a symbol: uprobe:PATH:SYMBOL");
  EXPECT_EQ(parse_error("uprobe:./loop:work+"), "invalid offset ''");
  EXPECT_EQ(parse_error("uprobe:./loop:work+0xg"), "invalid offset '0xg'");
  EXPECT_EQ(parse_error("uprobe:./loop:0x12zz"), "invalid address '0x12zz'");
  EXPECT_EQ(parse_error("uprobe:./loop:work*"), "wildcard symbols are not supported yet: 'work*'");
  EXPECT_EQ(parse_error("kprobe:do_sys_open"),
            "kernel-only feature 'kprobe' is not available in user space");
  EXPECT_EQ(parse_error("tracepoint:syscalls:sys_enter_open"),
            "kernel-only feature 'tracepoint' is not available in user space");
  EXPECT_EQ(parse_error("kr:f"), "kernel-only feature 'kr' is not available in user space");
  EXPECT_EQ(parse_error("uretprobe:./loop:work"), "probe type 'uretprobe' is not supported yet");
  EXPECT_EQ(parse_error("interval:s:1"), "probe type 'interval' is not supported yet");
  EXPECT_EQ(parse_error("begin"), "unknown probe type 'begin'");
}

} // namespace
} // namespace dprobe::lang
