#include "process/auxv.h"

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

} // namespace
} // namespace dprobe::process
