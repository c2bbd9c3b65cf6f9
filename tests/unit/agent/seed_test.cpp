// Entries dprobe seeds into a map's shared table (region_seed.h): hits that read the map see
// them, aggregations and assignments combine with what the agent already holds, and bad ids,
// sizes or a full table are refused without touching the region.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/region_seed.h"
#include "agent_harness.h"
#include "bytecode/packed.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

std::string int_key(int64_t v) {
  std::string key(8, '\0');
  bytecode::store_u64_le(reinterpret_cast<uint8_t*>(key.data()), static_cast<uint64_t>(v));
  return key;
}

class Seeds : public ::testing::TestWithParam<AgentKind> {};

TEST_P(Seeds, HitsReadSeededValues) {
  // @x and @k are read by the probe: shared maps; @c is a count the probe also reads.
  Harness h("uprobe:/bin/true:f { @x = @x + 1; @k[arg0] = @k[arg0] + 10; @c = count(); "
            "@d = @c; }",
            GetParam());
  const auto id = [&](const char* name) {
    for (uint32_t i = 0; i < h.module().maps.size(); ++i)
      if (h.module().maps[i].name == name) return i;
    ADD_FAILURE() << name;
    return 0u;
  };
  ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), id("@x"), "", std::vector<uint64_t>{5}));
  ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), id("@k"), int_key(7),
                                std::vector<uint64_t>{100}));
  ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), id("@c"), "", std::vector<uint64_t>{3}));
  h.hit(0, 7);
  h.hit(0, 8);
  EXPECT_EQ(h.scalar(id("@x")), 7u) << "5 seeded, then two hits";
  EXPECT_EQ(h.map(id("@k"))[int_key(7)], 110u);
  EXPECT_EQ(h.map(id("@k"))[int_key(8)], 10u);
  EXPECT_EQ(h.scalar(id("@c")), 5u);
  EXPECT_EQ(h.scalar(id("@d")), 5u) << "the hit read the seeded count";

  // Seeding into existing entries: counts add, an assigned value already there stays.
  ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), id("@c"), "", std::vector<uint64_t>{10}));
  ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), id("@x"), "", std::vector<uint64_t>{99}));
  EXPECT_EQ(h.scalar(id("@c")), 15u);
  EXPECT_EQ(h.scalar(id("@x")), 7u);
}

TEST_P(Seeds, RefusesBadRequests) {
  Harness h("uprobe:/bin/true:f { @k[arg0] = @k[arg0] + 1; }", GetParam());
  EXPECT_FALSE(seed_shared_entry(h.region(), h.layout(), 9, "", std::vector<uint64_t>{1}));
  EXPECT_FALSE(seed_shared_entry(h.region(), h.layout(), 0, "", std::vector<uint64_t>{1}))
      << "key of the wrong size";
  EXPECT_FALSE(seed_shared_entry(h.region(), h.layout(), 0, int_key(1), std::vector<uint64_t>{}));
  // A table offset the target corrupted is not followed.
  auto* desc = reinterpret_cast<abi::MapDesc*>(h.region().data() + h.layout().map_descs.offset);
  desc->shared_table = h.region().size() - 8;
  EXPECT_FALSE(seed_shared_entry(h.region(), h.layout(), 0, int_key(1), std::vector<uint64_t>{1}));
}

TEST_P(Seeds, StopsAtTheMapsLimit) {
  Harness h("uprobe:/bin/true:f { @k[arg0] = @k[arg0] + 1; }", GetParam());
  const uint32_t limit = h.layout().maps[0].max_entries;
  for (uint32_t i = 0; i < limit; ++i) {
    ASSERT_TRUE(seed_shared_entry(h.region(), h.layout(), 0, int_key(i), std::vector<uint64_t>{1}))
        << i;
  }
  EXPECT_FALSE(
      seed_shared_entry(h.region(), h.layout(), 0, int_key(limit), std::vector<uint64_t>{1}));
  EXPECT_EQ(h.map(0).size(), limit);
}

INSTANTIATE_TEST_SUITE_P(Agents, Seeds, ::testing::Values(AgentKind::Blob, AgentKind::Native));

} // namespace
} // namespace dprobe::agent
