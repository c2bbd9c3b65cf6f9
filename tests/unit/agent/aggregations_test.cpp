// Aggregations in the agent: multi-word values in per-thread (sharded) and shared tables, merged
// by the controller's reader by each map's rule, against the same values computed directly with
// bytecode/aggregate.h; clear()/zero() from a probe; layouts carrying the value size.
#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <tuple>
#include <vector>

#include "agent_harness.h"
#include "bytecode/aggregate.h"

namespace dprobe::agent {
namespace {

using bytecode::MapValueKind;
using bytecode::UpdateOp;
using testing::AgentKind;
using testing::Harness;
using testing::int_key;

/// Blob or native agent, with or without the thread-private (sharded) path.
using Param = std::tuple<AgentKind, bool>;

class Aggregations : public ::testing::TestWithParam<Param> {
 protected:
  static RegionOptions options() {
    RegionOptions o = Harness::default_options();
    // fs:0 names each thread's slot (glibc threads): every map update goes to the thread's own
    // table. Without it and without rdfsbase, every hit takes the shared, atomic path.
    if (std::get<1>(GetParam())) o.features |= abi::kFeatureTlsSelfPointer;
    // A keyed hist table is 8192 entries of 288 bytes per thread: room for a few threads' (the
    // engine's 64 MiB; memfd pages cost only once touched).
    o.arena_bytes = 64u << 20;
    return o;
  }
  static AgentKind kind() { return std::get<0>(GetParam()); }
};

/// The merged map as key -> all value words.
std::map<std::string, std::vector<uint64_t>> merged(Harness& h, uint32_t map) {
  std::map<std::string, std::vector<uint64_t>> out;
  const uint32_t words = h.layout().maps[map].value_words;
  for (const output::MapEntry& e : h.reader().map_entries(map)) {
    std::vector<uint64_t> w(words);
    for (uint32_t i = 0; i < words; ++i)
      w[i] = e.word(i);
    EXPECT_TRUE(out.emplace(e.key, w).second) << "key merged twice";
    // One key read alone (what a program dprobe runs sees) is the same merged value.
    std::vector<uint64_t> alone;
    EXPECT_TRUE(h.reader().lookup(map, e.key, alone));
    EXPECT_EQ(alone, w) << "lookup of map " << map;
  }
  if (h.layout().maps[map].key_size > 0) {
    std::vector<uint64_t> none;
    EXPECT_FALSE(h.reader().lookup(map, std::string(h.layout().maps[map].key_size, '\x7f'), none))
        << "a key no table holds";
  }
  return out;
}

uint64_t u(int64_t v) {
  return static_cast<uint64_t>(v);
}

TEST_P(Aggregations, EveryKindFromFourThreadsMergesExactly) {
  Harness h("uprobe:/bin/true:f { @h = hist(arg0); @l[arg1] = lhist(arg0, 0, 100, 10); "
            "@s[arg1] = stats(arg0); @a = avg(arg0); @mn = min(arg0); @mx = max(arg0); "
            "@sum = sum(arg0); }",
            kind(), options());
  for (uint32_t m = 0; m < h.layout().map_count; ++m) {
    EXPECT_EQ(h.layout().maps[m].mode, abi::kMapSharded) << h.module().maps[m].name;
  }
  constexpr int kThreads = 4;
  constexpr int64_t kPerThread = 3000;
  const auto value = [](int t, int64_t i) { return (i * 7 + t * 13) % 150 - 20; };
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&h, t, value] {
      for (int64_t i = 0; i < kPerThread; ++i)
        h.hit(0, u(value(t, i)), u(i % 3));
    });
  }
  for (auto& w : workers)
    w.join();

  // The same values applied directly, in one place.
  std::vector<uint64_t> hist(bytecode::kHistBuckets, 0);
  std::map<std::string, std::vector<uint64_t>> lhist, stats;
  std::vector<uint64_t> avg(2, 0), max(1, 0), min(1, 0), sum(1, 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int64_t i = 0; i < kPerThread; ++i) {
      const uint64_t v = u(value(t, i));
      const std::string key = int_key(u(i % 3));
      bytecode::apply_update(UpdateOp::Bucket, bytecode::hist_bucket(v), hist.data(),
                             bytecode::kHistBuckets);
      auto& l = lhist.try_emplace(key, bytecode::lhist_buckets(0, 100, 10), 0).first->second;
      bytecode::apply_update(UpdateOp::Bucket, bytecode::lhist_bucket(v, 0, 100, 10), l.data(),
                             static_cast<uint32_t>(l.size()));
      auto& s = stats.try_emplace(key, 2, 0).first->second;
      bytecode::apply_update(UpdateOp::Avg, v, s.data(), 2);
      bytecode::apply_update(UpdateOp::Avg, v, avg.data(), 2);
      if (!bytecode::update_is_noop(UpdateOp::Max, v))
        bytecode::apply_update(UpdateOp::Max, v, max.data(), 1);
      bytecode::apply_update(UpdateOp::Max, bytecode::kMinInverseBase - v, min.data(), 1);
      bytecode::apply_update(UpdateOp::Add, v, sum.data(), 1);
    }
  }
  EXPECT_EQ(merged(h, 0), (std::map<std::string, std::vector<uint64_t>>{{"", hist}}));
  EXPECT_EQ(merged(h, 1), lhist);
  EXPECT_EQ(merged(h, 2), stats);
  EXPECT_EQ(merged(h, 3), (std::map<std::string, std::vector<uint64_t>>{{"", avg}}));
  EXPECT_EQ(merged(h, 4), (std::map<std::string, std::vector<uint64_t>>{{"", min}}));
  EXPECT_EQ(merged(h, 5), (std::map<std::string, std::vector<uint64_t>>{{"", max}}));
  EXPECT_EQ(merged(h, 6), (std::map<std::string, std::vector<uint64_t>>{{"", sum}}));
  EXPECT_EQ(bytecode::kMinInverseBase - min[0], u(-20)) << "the smallest value";
  EXPECT_EQ(max[0], 129u);
  EXPECT_EQ(h.reader().counters().dropped_map_updates, 0u);
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
}

TEST_P(Aggregations, MaxOfNegativesAndMinAboveFourGigCreateNoEntry) {
  Harness h("uprobe:/bin/true:f { @mx = max(arg0); @mn[arg2] = min(arg1); }", kind(), options());
  h.hit(0, u(-5), u(-1), 1);
  h.hit(0, u(-1), 5000000000ull, 2);
  EXPECT_TRUE(h.reader().map_entries(0).empty());
  EXPECT_EQ(h.reader().map_entries(1).size(), 1u) << "only key 1 (min -1)";
  h.hit(0, 0, 0, 2);
  EXPECT_EQ(merged(h, 0).at(""), std::vector<uint64_t>{0});
  EXPECT_EQ(merged(h, 1).at(int_key(2)), std::vector<uint64_t>{bytecode::kMinInverseBase});
}

TEST_P(Aggregations, SharedTablesWhenTheMapIsAlsoDeleted) {
  Harness h("uprobe:/bin/true:f { @h[arg1] = hist(arg0); @s[arg1] = stats(arg0); }"
            "uprobe:/bin/true:g { delete(@h[arg1]); }",
            kind(), options());
  EXPECT_EQ(h.layout().maps[0].mode, abi::kMapShared);
  EXPECT_EQ(h.layout().maps[1].mode, abi::kMapSharded);
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&h] {
      for (uint64_t i = 0; i < 2000; ++i)
        h.hit(0, i % 64, i % 2);
    });
  }
  for (auto& w : workers)
    w.join();
  auto hists = merged(h, 0);
  ASSERT_EQ(hists.size(), 2u);
  uint64_t total = 0;
  for (uint64_t c : hists.at(int_key(0)))
    total += c;
  EXPECT_EQ(total, 4000u);
  uint64_t ones = 0;
  for (uint64_t i = 0; i < 2000; ++i)
    ones += i % 64 == 1 ? 4 : 0;
  EXPECT_EQ(hists.at(int_key(1))[2], ones) << "bucket [1]: the value 1";
  h.hit(1, 0, 0);
  hists = merged(h, 0);
  EXPECT_EQ(hists.count(int_key(0)), 0u);
  // A deleted key comes back with every bucket at 0 but the new one.
  h.hit(0, 3, 0);
  std::vector<uint64_t> fresh(bytecode::kHistBuckets, 0);
  fresh[3] = 1;
  EXPECT_EQ(merged(h, 0).at(int_key(0)), fresh);
  uint64_t odd_total = 0;
  for (uint64_t i = 1; i < 2000; i += 2)
    odd_total += 4 * (i % 64);
  EXPECT_EQ(merged(h, 1).at(int_key(1)), (std::vector<uint64_t>{4000, odd_total}));
}

TEST_P(Aggregations, ClearAndZeroFromAProbeResetEveryTableAndTellTheController) {
  Harness h("uprobe:/bin/true:f { @h[arg1] = hist(arg0); @c = count(); }"
            "uprobe:/bin/true:g { clear(@h); zero(@c); print(@c); }",
            kind(), options());
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&h] {
      for (uint64_t i = 0; i < 100; ++i)
        h.hit(0, i, i % 4);
    });
  }
  for (auto& w : workers)
    w.join();
  ASSERT_EQ(merged(h, 0).size(), 4u);
  h.hit(1);
  EXPECT_TRUE(merged(h, 0).empty());
  EXPECT_EQ(merged(h, 1).at(""), std::vector<uint64_t>{0});
  h.hit(0, 8, 1);
  EXPECT_EQ(merged(h, 0).size(), 1u);
  EXPECT_EQ(merged(h, 1).at(""), std::vector<uint64_t>{1});

  std::vector<std::pair<uint32_t, uint32_t>> commands;
  const auto on_printf = [](void*, uint32_t, std::span<const uint8_t>) { FAIL() << "no printf"; };
  const auto on_command = [](void* context, uint32_t map, uint32_t command) {
    static_cast<std::vector<std::pair<uint32_t, uint32_t>>*>(context)->emplace_back(map, command);
  };
  EXPECT_EQ(h.reader().visit_events(on_printf, &commands, SIZE_MAX, on_command), 3u);
  const std::vector<std::pair<uint32_t, uint32_t>> expected = {
      {0, static_cast<uint32_t>(bytecode::MapCommandKind::Clear)},
      {1, static_cast<uint32_t>(bytecode::MapCommandKind::Zero)},
      {1, static_cast<uint32_t>(bytecode::MapCommandKind::Print)}};
  EXPECT_EQ(commands, expected);
  EXPECT_EQ(h.reader().problems().bad_records, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Agents, Aggregations,
    ::testing::Combine(::testing::Values(AgentKind::Blob, AgentKind::Native),
                       ::testing::Bool()),
    [](const auto& info) {
      return std::string(testing::kind_name(std::get<0>(info.param))) +
             (std::get<1>(info.param) ? "Private" : "Default");
    });

TEST(AggregationLayout, ValueWordsRoundTripAndHostileOnesAreRefused) {
  std::vector<ProbeSpec> probes;
  bytecode::Module module = testing::compile_script(
      "uprobe:/bin/true:f { @h = hist(arg0); @l[arg1] = lhist(arg0, 0, 50, 5); @a = avg(arg0); "
      "@c = count(); }",
      &probes);
  auto layout = plan_region(module, 1, Harness::default_options());
  ASSERT_TRUE(layout.has_value()) << layout.error().message;
  EXPECT_EQ(layout->maps[0].value_words, bytecode::kHistBuckets);
  EXPECT_EQ(layout->maps[1].value_words, 12u);
  EXPECT_EQ(layout->maps[2].value_words, 2u);
  EXPECT_EQ(layout->maps[3].value_words, 1u);
  EXPECT_EQ(layout->maps[1].value_kind, MapValueKind::Lhist);
  auto memory = SharedRegion::create(layout->size);
  ASSERT_TRUE(memory.has_value());
  ASSERT_TRUE(
      init_region(memory->bytes(), *layout, module, probes, Harness::default_options()).has_value());
  auto back = read_layout(memory->bytes());
  ASSERT_TRUE(back.has_value()) << back.error().message;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(back->maps[i].value_words, layout->maps[i].value_words);
    EXPECT_EQ(back->maps[i].value_kind, layout->maps[i].value_kind);
  }
  auto* descs = reinterpret_cast<abi::MapDesc*>(memory->bytes().data() + layout->map_descs.offset);
  descs[0].value_words = 0;
  EXPECT_FALSE(read_layout(memory->bytes()).has_value());
  descs[0].value_words = bytecode::kMaxValueWords + 1;
  EXPECT_FALSE(read_layout(memory->bytes()).has_value());
  descs[0].value_words = bytecode::kHistBuckets;
  descs[0].value_kind = 200;
  EXPECT_FALSE(read_layout(memory->bytes()).has_value());
  descs[0].value_kind = static_cast<uint8_t>(MapValueKind::Hist);
  EXPECT_TRUE(read_layout(memory->bytes()).has_value());
}

} // namespace
} // namespace dprobe::agent
