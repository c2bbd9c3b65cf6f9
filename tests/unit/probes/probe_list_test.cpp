#include "probes/probe_list.h"

#include <unistd.h>

#include <climits>

#include <gtest/gtest.h>

// Two functions of this test binary for list_probes() to find.
extern "C" __attribute__((noinline, used)) int dprobe_list_fixture_alpha(int x) {
  return x + 1;
}
extern "C" __attribute__((noinline, used)) int dprobe_list_fixture_beta(int x) {
  return x * 2;
}

namespace dprobe::probes {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::string pattern_error(std::string_view text) {
  auto pattern = parse_list_pattern(text);
  return pattern ? "<no error>" : pattern.error().text();
}

TEST(ProbeList, ParsesPatterns) {
  auto p = parse_list_pattern("uprobe:./app:parse_*");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->path, "./app");
  EXPECT_EQ(p->function, "parse_*");
  p = parse_list_pattern("u:libc:mall*");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->path, "libc");
  EXPECT_EQ(p->function, "mall*");
  p = parse_list_pattern("uprobe:/opt/a:b/app:*");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->path, "/opt/a:b/app");
}

TEST(ProbeList, RefusesWhatCannotBeListed) {
  EXPECT_EQ(pattern_error("kprobe:vfs_*"),
            "-l 'kprobe:vfs_*': kernel-only probe type 'kprobe': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
  EXPECT_EQ(pattern_error("BEGIN"),
            "-l 'BEGIN': only uprobes can be listed: -l 'uprobe:PATH:PATTERN'");
  EXPECT_EQ(pattern_error("uprob:x:y"), "-l 'uprob:x:y': unknown probe type 'uprob'");
  EXPECT_EQ(pattern_error("uprobe:./app"),
            "-l 'uprobe:./app': a pattern needs a path and a function: -l 'uprobe:PATH:PATTERN'");
  EXPECT_EQ(pattern_error("uprobe::f"),
            "-l 'uprobe::f': a pattern needs a path: -l 'uprobe:PATH:PATTERN'");
  EXPECT_EQ(pattern_error("uprobe:./app:"),
            "-l 'uprobe:./app:': a pattern needs a function (or '*'): -l 'uprobe:PATH:PATTERN'");
  EXPECT_EQ(pattern_error("uprobe:/usr/lib/*/libc.so.6:malloc"),
            "-l 'uprobe:/usr/lib/*/libc.so.6:malloc': wildcards in the path are not supported, "
            "only in the function");
  EXPECT_EQ(pattern_error("uprobe:./app:main+4"),
            "-l 'uprobe:./app:main+4': 'main+4' is not a function name or pattern (offsets and "
            "addresses cannot be listed)");
}

TEST(ProbeList, ListedPathIsWhatBpftracePrints) {
  EXPECT_EQ(listed_path("./loop", "/w/loop", "/w"), "./loop");
  EXPECT_EQ(listed_path("/w/../w/loop", "/w/loop", "/w"), "/w/../w/loop");
  EXPECT_EQ(listed_path("loop", "/w/loop", "/w"), "loop"); // found in the current directory
  EXPECT_EQ(listed_path("bash", "/usr/bin/bash", "/w"), "/usr/bin/bash");
  EXPECT_EQ(listed_path("libc", "/lib/x86_64-linux-gnu/libc.so.6", "/w"),
            "/lib/x86_64-linux-gnu/libc.so.6");
}

TEST(ProbeList, LinesAreSortedAndUnique) {
  const std::vector<std::string> names = {
      "work", "main", "work_sum", "work", "_start", "_IO_fclose@@GLIBC_2.2.5", "_IO_fclose"};
  EXPECT_EQ(listing_lines("./loop", "work*", names),
            (std::vector<std::string>{"uprobe:./loop:work", "uprobe:./loop:work_sum"}));
  EXPECT_EQ(
      listing_lines("./loop", "*", names),
      (std::vector<std::string>{"uprobe:./loop:_IO_fclose", "uprobe:./loop:_IO_fclose@@GLIBC_2.2.5",
                                "uprobe:./loop:_start", "uprobe:./loop:main", "uprobe:./loop:work",
                                "uprobe:./loop:work_sum"}));
  EXPECT_EQ(listing_lines("./loop", "main", names),
            (std::vector<std::string>{"uprobe:./loop:main"}));
  EXPECT_TRUE(listing_lines("./loop", "nothing*", names).empty());
}

TEST(ProbeList, ListsFunctionsOfAFile) {
  const std::string self = self_path();
  ASSERT_FALSE(self.empty());
  auto lines = list_probes("uprobe:" + self + ":dprobe_list_fixture_*", "/", "");
  ASSERT_TRUE(lines) << lines.error().text();
  EXPECT_EQ(*lines, (std::vector<std::string>{"uprobe:" + self + ":dprobe_list_fixture_alpha",
                                              "uprobe:" + self + ":dprobe_list_fixture_beta"}));
  lines = list_probes("u:" + self + ":dprobe_list_fixture_gamma*", "/", "");
  ASSERT_TRUE(lines);
  EXPECT_TRUE(lines->empty());
  EXPECT_EQ(dprobe_list_fixture_alpha(1) + dprobe_list_fixture_beta(1), 4);
}

TEST(ProbeList, MissingFileNamesIt) {
  auto lines = list_probes("uprobe:/nonexistent/app:*", "/", "");
  ASSERT_FALSE(lines);
  EXPECT_EQ(lines.error().text(),
            "-l 'uprobe:/nonexistent/app:*': /nonexistent/app: No such file or directory");
}

} // namespace
} // namespace dprobe::probes
