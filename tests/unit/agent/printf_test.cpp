// printf events through the ring: arguments, per-thread order, drops when full, wrap-around,
// and a record whose producer never finished.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "agent_harness.h"
#include "bytecode/packed.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

constexpr const char* kTwoInts = "uprobe:/bin/true:main { printf(\"%d %d\\n\", arg0, arg1); }";

uint64_t arg(const PrintfEvent& e, size_t i) {
  return bytecode::load_u64_le(e.args.data() + 8 * i);
}

class Printf : public ::testing::TestWithParam<AgentKind> {};

TEST_P(Printf, EventsCarryTheirArgumentsInOrder) {
  Harness h(kTwoInts, GetParam());
  for (uint64_t i = 0; i < 1000; ++i)
    h.hit(0, i, i * 2 + 1);
  std::vector<PrintfEvent> events;
  EXPECT_EQ(h.reader().drain_events(events), 1000u);
  ASSERT_EQ(events.size(), 1000u);
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(events[i].format_id, 0u);
    ASSERT_EQ(events[i].args.size(), 16u);
    EXPECT_EQ(arg(events[i], 0), i);
    EXPECT_EQ(arg(events[i], 1), i * 2 + 1);
  }
  EXPECT_EQ(h.reader().drain_events(events), 0u);
  EXPECT_EQ(h.reader().counters().dropped_events, 0u);
}

TEST_P(Printf, FourThreadsKeepTheirOwnOrderWhileDprobeDrains) {
  RegionOptions options = Harness::default_options();
  options.ring_bytes = 1u << 20;
  Harness h(kTwoInts, GetParam(), options);
  constexpr uint64_t kPerThread = 5000;
  std::atomic<int> running{4};
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < 4; ++t) {
    workers.emplace_back([&h, &running, t] {
      for (uint64_t seq = 0; seq < kPerThread; ++seq)
        h.hit(0, t, seq);
      running.fetch_sub(1);
    });
  }
  std::vector<PrintfEvent> events;
  while (running.load() > 0)
    h.reader().drain_events(events);
  for (auto& w : workers)
    w.join();
  h.reader().drain_events(events);
  EXPECT_EQ(h.reader().counters().dropped_events, 0u);
  ASSERT_EQ(events.size(), 4 * kPerThread);
  uint64_t next[4] = {0, 0, 0, 0};
  for (const PrintfEvent& e : events) {
    const uint64_t t = arg(e, 0);
    ASSERT_LT(t, 4u);
    ASSERT_EQ(arg(e, 1), next[t]) << "thread " << t << " out of order";
    ++next[t];
  }
  EXPECT_EQ(h.reader().counters().dropped_events, 0u);
  EXPECT_EQ(h.reader().problems().bad_records, 0u);
}

TEST_P(Printf, FullRingDropsAndCountsThenRecovers) {
  RegionOptions options = Harness::default_options();
  options.ring_bytes = 4096;
  Harness h(kTwoInts, GetParam(), options);
  // 24-byte records: 170 fit (4080 bytes); the 171st would need a 16-byte pad it has no room for.
  for (uint64_t i = 0; i < 500; ++i)
    h.hit(0, i, 0);
  EXPECT_EQ(h.reader().counters().dropped_events, 330u);
  std::vector<PrintfEvent> events;
  EXPECT_EQ(h.reader().drain_events(events), 170u);
  for (uint64_t i = 0; i < 170; ++i)
    EXPECT_EQ(arg(events[i], 0), i);
  // Space is back; these wrap around the end of the ring behind a padding record.
  events.clear();
  for (uint64_t i = 0; i < 10; ++i)
    h.hit(0, 1000 + i, 0);
  EXPECT_EQ(h.reader().drain_events(events), 10u);
  for (uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(arg(events[i], 0), 1000 + i);
  EXPECT_EQ(h.reader().counters().dropped_events, 330u);
}

TEST_P(Printf, DrainingZeroesEveryConsumedByteAcrossTheWrap) {
  RegionOptions options = Harness::default_options();
  options.ring_bytes = 4096;
  Harness h(kTwoInts, GetParam(), options);
  auto* ring = reinterpret_cast<abi::RingHeader*>(h.region().data() + h.layout().ring.offset);
  const uint8_t* data = reinterpret_cast<const uint8_t*>(ring + 1);
  const uint64_t capacity = h.layout().ring_capacity();
  auto all_zero = [&] {
    for (uint64_t i = 0; i < capacity; ++i)
      if (data[i] != 0) return false;
    return true;
  };
  uint64_t next = 0;
  // 24-byte records: rounds of 100 wrap (behind a padding record) every second round.
  for (int round = 0; round < 7; ++round) {
    for (int i = 0; i < 100; ++i)
      h.hit(0, next++, 0);
    std::vector<uint64_t> seen;
    const size_t n = h.reader().visit_events(
        [](void* context, uint32_t format, std::span<const uint8_t> args) {
          ASSERT_EQ(format, 0u);
          ASSERT_EQ(args.size(), 16u);
          static_cast<std::vector<uint64_t>*>(context)->push_back(bytecode::load_u64_le(args.data()));
        },
        &seen);
    ASSERT_EQ(n, 100u) << "round " << round;
    ASSERT_EQ(seen.size(), 100u);
    EXPECT_EQ(seen.front(), next - 100);
    EXPECT_EQ(seen.back(), next - 1);
    EXPECT_EQ(ring->tail, ring->head);
    EXPECT_TRUE(all_zero()) << "round " << round;
  }
  EXPECT_EQ(h.reader().counters().dropped_events, 0u);
}

TEST_P(Printf, ShapesNearTheDirectPathGiveTheVmResult) {
  // Arguments in any order and repeated take the direct path; anything computed, a context
  // field that is not a register, or a second statement goes through the VM. Same events.
  struct Case {
    const char* script;
    std::vector<uint64_t> expected;
  };
  const Case cases[] = {
      {"uprobe:/bin/true:main { printf(\"%d %d %d\\n\", arg2, arg0, arg2); }", {30, 10, 30}},
      {"uprobe:/bin/true:main { printf(\"%d\\n\", arg0 + 1); }", {11}},
      {"uprobe:/bin/true:main { printf(\"%d %d\\n\", arg1, 7); }", {20, 7}},
      {"uprobe:/bin/true:main { printf(\"%d\\n\", arg1); printf(\"%d\\n\", arg0); }", {20}},
      {"uprobe:/bin/true:main { printf(\"%d %d %d %d %d %d\\n\", arg5, arg4, arg3, arg2, arg1, "
       "arg0); }",
       {60, 50, 40, 30, 20, 10}},
  };
  for (const Case& c : cases) {
    Harness h(c.script, GetParam());
    h.hit(0, 10, 20, 30, 40, 50, 60);
    std::vector<PrintfEvent> events;
    ASSERT_GE(h.reader().drain_events(events), 1u) << c.script;
    ASSERT_EQ(events[0].args.size(), 8 * c.expected.size()) << c.script;
    for (size_t i = 0; i < c.expected.size(); ++i)
      EXPECT_EQ(arg(events[0], i), c.expected[i]) << c.script << " arg " << i;
    EXPECT_EQ(h.reader().counters().vm_errors, 0u);
  }
}

TEST_P(Printf, WrapsAroundManyTimes) {
  RegionOptions options = Harness::default_options();
  options.ring_bytes = 4096;
  Harness h("uprobe:/bin/true:main { printf(\"%s %d\\n\", str(arg0), arg1); }", GetParam(),
            options);
  const char* text = "wrap";
  std::vector<PrintfEvent> events;
  uint64_t seq = 0;
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 7; ++i)
      h.hit(0, reinterpret_cast<uint64_t>(text), seq++);
    h.reader().drain_events(events);
  }
  ASSERT_EQ(events.size(), seq);
  for (uint64_t i = 0; i < seq; ++i) {
    ASSERT_EQ(events[i].args.size(), 72u);
    EXPECT_STREQ(reinterpret_cast<const char*>(events[i].args.data()), "wrap");
    EXPECT_EQ(bytecode::load_u64_le(events[i].args.data() + 64), i);
  }
  EXPECT_EQ(h.reader().counters().dropped_events, 0u);
}

TEST_P(Printf, DrainStopsAtUnfinishedRecordAndSkipsItWhenItsProducerIsGone) {
  Harness h(kTwoInts, GetParam());
  // A producer that reserved 24 bytes, wrote the size, and died.
  auto* ring = reinterpret_cast<abi::RingHeader*>(h.region().data() + h.layout().ring.offset);
  auto* data = reinterpret_cast<uint8_t*>(ring + 1);
  const uint64_t stale = 24;
  std::memcpy(data, &stale, 8);
  ring->head = 24;
  h.hit(0, 77, 0);
  std::vector<PrintfEvent> events;
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(h.reader().drain_events(events), 0u) << "drain " << i;
  EXPECT_EQ(h.reader().problems().skipped_records, 0u);
  h.reader().set_stuck_timeout(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(h.reader().drain_events(events), 1u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(arg(events[0], 0), 77u);
  EXPECT_EQ(h.reader().problems().skipped_records, 1u);
}

TEST_P(Printf, MaxEventsLimitsOneDrain) {
  Harness h(kTwoInts, GetParam());
  for (uint64_t i = 0; i < 10; ++i)
    h.hit(0, i, 0);
  std::vector<PrintfEvent> events;
  EXPECT_EQ(h.reader().drain_events(events, 3), 3u);
  EXPECT_EQ(h.reader().drain_events(events), 7u);
  ASSERT_EQ(events.size(), 10u);
  for (uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(arg(events[i], 0), i);
}

INSTANTIATE_TEST_SUITE_P(Agents, Printf, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
