// Map semantics in the agent: shared maps (assigned, looked up, deleted) against sharded count
// maps, full maps, and the controller's choice between the two.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;
using testing::int_key;

class Maps : public ::testing::TestWithParam<AgentKind> {};

TEST_P(Maps, AssignmentsAndLookupsSeeTheLatestValue) {
  Harness h("uprobe:/bin/true:f { @x[arg0] = arg1; }"
            "uprobe:/bin/true:g { @y[arg0] = @x[arg0]; }",
            GetParam());
  EXPECT_EQ(h.layout().maps[0].mode, abi::kMapShared);
  h.hit(0, 1, 100);
  h.hit(0, 2, 200);
  h.hit(0, 1, 111);
  h.hit(1, 1);
  h.hit(1, 3);
  const auto x = h.map(0);
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x.at(int_key(1)), 111u);
  EXPECT_EQ(x.at(int_key(2)), 200u);
  const auto y = h.map(1);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(y.at(int_key(1)), 111u);
  EXPECT_EQ(y.at(int_key(3)), 0u);
}

TEST_P(Maps, DeleteRemovesAndAKeyComesBackFromZero) {
  Harness h("uprobe:/bin/true:f { @x[arg0] = count(); }"
            "uprobe:/bin/true:g { delete(@x[arg0]); }",
            GetParam());
  EXPECT_EQ(h.layout().maps[0].mode, abi::kMapShared);
  for (int i = 0; i < 3; ++i)
    h.hit(0, 1);
  h.hit(0, 2);
  h.hit(1, 1);
  EXPECT_EQ(h.map(0).count(int_key(1)), 0u);
  h.hit(0, 1);
  const auto x = h.map(0);
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x.at(int_key(1)), 1u);
  EXPECT_EQ(x.at(int_key(2)), 1u);
  h.hit(1, 99); // deleting an absent key does nothing
  EXPECT_EQ(h.map(0).size(), 2u);
}

TEST_P(Maps, FullMapDropsNewKeysAndCountsThem) {
  std::vector<ProbeSpec> probes;
  bytecode::Module module =
      testing::compile_script("uprobe:/bin/true:f { @c[arg0] = count(); }", &probes);
  module.maps[0].max_entries = 4;
  Harness h(module, probes, GetParam());
  for (uint64_t key = 0; key < 10; ++key)
    h.hit(0, key);
  for (uint64_t key = 0; key < 4; ++key)
    h.hit(0, key); // known keys still update
  const auto m = h.map(0);
  ASSERT_EQ(m.size(), 4u);
  for (const auto& [key, value] : m)
    EXPECT_EQ(value, 2u);
  EXPECT_EQ(h.reader().counters().dropped_map_updates, 6u);
}

TEST_P(Maps, StringKeysFromManyThreads) {
  Harness h("uprobe:/bin/true:f { @s[str(arg0), arg1] = count(); }", GetParam());
  EXPECT_EQ(h.layout().maps[0].mode, abi::kMapSharded);
  const char* names[] = {"alpha", "beta", "gamma"};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&h, &names] {
      for (uint64_t i = 0; i < 3000; ++i)
        h.hit(0, reinterpret_cast<uint64_t>(names[i % 3]), i % 2);
    });
  }
  for (auto& w : workers)
    w.join();
  const auto m = h.map(0);
  ASSERT_EQ(m.size(), 6u);
  for (const auto& [key, value] : m) {
    ASSERT_EQ(key.size(), 72u);
    EXPECT_EQ(value, 1500u) << key.c_str();
  }
  std::string beta1(72, '\0');
  beta1.replace(0, 4, "beta");
  beta1[64] = 1;
  EXPECT_EQ(m.count(beta1), 1u);
}

TEST_P(Maps, AssignedScalarKeepsTheLastValueAcrossThreads) {
  Harness h("uprobe:/bin/true:f { @last = arg0; }", GetParam());
  std::thread([&h] { h.hit(0, 5); }).join();
  std::thread([&h] { h.hit(0, 9); }).join();
  EXPECT_EQ(h.scalar(0), 9u);
}

INSTANTIATE_TEST_SUITE_P(Agents, Maps, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

TEST(MapMode, OnlyAddOnlyMapsAreSharded) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module m = testing::compile_script(
      "uprobe:/bin/true:f { @a = count(); @b[arg0] = count(); @c = arg0; @d[arg0] = count(); "
      "@e = @d[arg0]; @f[arg1] = count(); delete(@f[arg1]); }",
      &probes);
  ASSERT_EQ(m.maps.size(), 6u);
  EXPECT_EQ(map_mode(m, 0), abi::kMapSharded);
  EXPECT_EQ(map_mode(m, 1), abi::kMapSharded);
  EXPECT_EQ(map_mode(m, 2), abi::kMapShared);
  EXPECT_EQ(map_mode(m, 3), abi::kMapShared); // looked up
  EXPECT_EQ(map_mode(m, 4), abi::kMapShared);
  EXPECT_EQ(map_mode(m, 5), abi::kMapShared); // deleted
}

} // namespace
} // namespace dprobe::agent
