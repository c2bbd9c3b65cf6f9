#include "process/near_gap.h"

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

Mapping mapping(uint64_t start, uint64_t end, std::string path = "") {
  Mapping m;
  m.start = start;
  m.end = end;
  m.path = std::move(path);
  return m;
}

constexpr uint64_t kGiB = uint64_t{1} << 30;

TEST(NearGap, PicksTheClosestGapOnEitherSide) {
  // Text at 0x555555554000, heap right after it, a library far away.
  std::vector<Mapping> maps{mapping(0x555555554000, 0x555555560000, "/bin/x"),
                            mapping(0x555555560000, 0x555555581000, "[heap]"),
                            mapping(0x7f0000000000, 0x7f0000100000, "/lib/libc.so.6")};
  auto c = candidate_addresses_near(maps, 0x555555556000, 0x2000);
  ASSERT_FALSE(c.empty());
  // Just below the text, one guard page away from it.
  EXPECT_EQ(c[0], 0x555555554000u - 0x1000 - 0x2000);
  // Just above the heap, one guard page away from it.
  ASSERT_GE(c.size(), 2u);
  EXPECT_EQ(c[1], 0x555555581000u + 0x1000);
  for (uint64_t a : c) {
    EXPECT_LE(a + 0x2000 - 1 - std::min<uint64_t>(a, 0x555555556000), kNearReach);
    EXPECT_EQ(a % 0x1000, 0u);
  }
}

TEST(NearGap, EverythingWithinReach) {
  // Nothing free within 2 GiB below; the only gap above starts 3 GiB away.
  std::vector<Mapping> maps{mapping(0x100000, 0x200000000, "/big"),
                            mapping(0x200000000, 0x200000000 + 3 * kGiB, "/bigger")};
  EXPECT_TRUE(candidate_addresses_near(maps, 0x100000000, 0x1000).empty());
}

TEST(NearGap, RegionMustFitEntirely) {
  const uint64_t near = 0x400000000;
  std::vector<Mapping> maps{mapping(0x100000, near + kNearReach - 0x2000, "/a"),
                            mapping(near + kNearReach + 0x10000, near + 4 * kGiB, "/b")};
  // After the guard page only [near + reach - 0x1000, near + reach) is free and in reach: one
  // page fits, two do not.
  auto one = candidate_addresses_near(maps, near, 0x1000);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], near + kNearReach - 0x1000);
  EXPECT_TRUE(candidate_addresses_near(maps, near, 0x2000).empty());
}

TEST(NearGap, KeepsAwayFromTheStack) {
  const uint64_t stack_start = 0x7ffc00000000;
  std::vector<Mapping> maps{mapping(0x7ffb00000000, 0x7ffb00001000, "/lib"),
                            mapping(stack_start, stack_start + 0x21000, "[stack]")};
  auto c = candidate_addresses_near(maps, stack_start - 0x1000, 0x1000);
  ASSERT_EQ(c.size(), 2u);
  // Above the stack (it grows down), or below its reserve.
  EXPECT_EQ(c[0], stack_start + 0x21000 + 0x1000);
  EXPECT_EQ(c[1] + 0x1000, stack_start - kStackReserve);
}

TEST(NearGap, LowAddressesAreNeverUsed) {
  std::vector<Mapping> maps{mapping(0x400000, 0x500000, "/bin/static")};
  auto c = candidate_addresses_near(maps, 0x400000, 0x1000);
  ASSERT_FALSE(c.empty());
  for (uint64_t a : c)
    EXPECT_GE(a, kLowestAddress);
}

} // namespace
} // namespace dprobe::process
