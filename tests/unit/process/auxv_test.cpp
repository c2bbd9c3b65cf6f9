#include "process/auxv.h"

#include <asm/hwcap2.h>
#include <elf.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

TEST(Auxv, ParsesPairsUpToNull) {
  const uint64_t words[] = {AT_PAGESZ, 4096, AT_ENTRY, 0x401000, AT_NULL, 0, AT_BASE, 1};
  std::vector<uint8_t> bytes(sizeof words);
  std::memcpy(bytes.data(), words, sizeof words);
  auto auxv = parse_auxv(bytes);
  ASSERT_EQ(auxv.size(), 2u);
  EXPECT_EQ(aux_value(auxv, AT_ENTRY), 0x401000u);
  EXPECT_EQ(aux_value(auxv, AT_PAGESZ), 4096u);
  EXPECT_EQ(aux_value(auxv, AT_BASE), std::nullopt);
}

TEST(Auxv, OwnProcessMatchesGetauxval) {
  auto auxv = read_auxv(::getpid());
  ASSERT_TRUE(auxv) << auxv.error().text();
  EXPECT_EQ(aux_value(*auxv, AT_ENTRY), ::getauxval(AT_ENTRY));
  EXPECT_EQ(aux_value(*auxv, AT_BASE), ::getauxval(AT_BASE));
}

TEST(Auxv, Hwcap2OfOwnProcessMatchesGetauxval) {
  auto hwcap2 = read_hwcap2(::getpid());
  ASSERT_TRUE(hwcap2) << hwcap2.error().text();
  EXPECT_EQ(*hwcap2, ::getauxval(AT_HWCAP2));
  EXPECT_EQ(kHwcap2FsGsBase, uint64_t{HWCAP2_FSGSBASE});
}

TEST(Auxv, Hwcap2OfMissingProcessIsAnError) {
  auto hwcap2 = read_hwcap2(0x7ffffff0);
  ASSERT_FALSE(hwcap2);
  EXPECT_EQ(hwcap2.error().errno_value, ENOENT);
}

} // namespace
} // namespace dprobe::process
