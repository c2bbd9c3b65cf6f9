// The fast path for bare count() programs: which programs get it, and that it changes nothing
// but speed (same results as the interpreter, safe with a wrong hint from the controller).
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

FastPathInfo classify(const char* script, uint32_t program = 0) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(script, &probes);
  auto layout =
      plan_region(module, static_cast<uint32_t>(probes.size()), Harness::default_options());
  EXPECT_TRUE(layout.has_value());
  if (!layout || program >= module.programs.size()) return {};
  return fast_path(module.programs[program], *layout);
}

// A count updated by another program too: the map's table, not the hit counter, holds it.
constexpr const char* kSharedCount =
    "uprobe:/bin/true:f { @ = count(); } uprobe:/bin/true:g { @ = count(); @x = 1; }";

TEST(FastPath, RecognisesBareCounts) {
  FastPathInfo f = classify("uprobe:/bin/true:f { @ = count(); }");
  EXPECT_EQ(f.kind, abi::kFastHitCount);
  EXPECT_EQ(f.map, 0u);
  f = classify(kSharedCount);
  EXPECT_EQ(f.kind, abi::kFastCount);
  EXPECT_EQ(f.map, 0u);
  f = classify("uprobe:/bin/true:f { @a = count(); } uprobe:/bin/true:g { @b[arg3] = count(); }",
               1);
  EXPECT_EQ(f.kind, abi::kFastCountByArg);
  EXPECT_EQ(f.map, 1u);
  EXPECT_EQ(f.arg, 3u);
}

TEST(FastPath, LeavesEverythingElseToTheInterpreter) {
  EXPECT_EQ(classify("uprobe:/bin/true:f { @[arg0, arg1] = count(); }").kind, abi::kFastNone);
  EXPECT_EQ(classify("uprobe:/bin/true:f { @[tid] = count(); }").kind, abi::kFastNone);
  EXPECT_EQ(classify("uprobe:/bin/true:f { @ = count(); @x = 1; }").kind, abi::kFastNone);
  EXPECT_EQ(classify("uprobe:/bin/true:f { @x = 1; }").kind, abi::kFastNone);
  // Looked up elsewhere: a shared map, updated atomically by the interpreter.
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g { @d = @c; }").kind,
            abi::kFastNone);
}

TEST(FastPath, CountsByHitsOnlyMapsNothingElseTouches) {
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g { @c = count(); }", 1)
                .kind,
            abi::kFastHitCount);
  EXPECT_NE(classify("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g { delete(@c); }").kind,
            abi::kFastHitCount);
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g /@c > 2/ { }").kind,
            abi::kFastNone); // looked up: a shared map
  // Only the map another program touches loses it.
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g { @d = count(); "
                     "@x = 1; }")
                .kind,
            abi::kFastHitCount);
}

// A program dprobe runs itself (interval, BEGIN, END) that reads or prints the map needs its
// value while probes run: the map then lives in a table (shared when read), which dprobe reads
// live; the hit counters alone would hold it only in the agent.
TEST(FastPath, MapsReadByProgramsDprobeRunsAreNotHitCounted) {
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } interval:ms:50 /@c > 2/ { exit(); }")
                .kind,
            abi::kFastNone);
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } END { printf(\"%d\\n\", @c); }").kind,
            abi::kFastNone);
  EXPECT_NE(classify("uprobe:/bin/true:f { @c = count(); } interval:s:1 { print(@c); }").kind,
            abi::kFastHitCount);
  // An interval program that only counts into its own map leaves @c alone.
  EXPECT_EQ(classify("uprobe:/bin/true:f { @c = count(); } interval:s:1 { @t = count(); }").kind,
            abi::kFastHitCount);
}

class FastPathRuns : public ::testing::TestWithParam<AgentKind> {};

/// The same hits with the controller's fast-path hint as planned and with it removed.
void compare_with_interpreter(AgentKind kind, const char* script) {
  Harness fast(script, kind);
  Harness slow(script, kind);
  auto* entry =
      reinterpret_cast<abi::ProbeEntry*>(slow.region().data() + slow.layout().probes.offset);
  entry->fast = abi::kFastNone;
  std::vector<std::thread> workers;
  for (Harness* h : {&fast, &slow}) {
    for (int t = 0; t < 3; ++t) {
      workers.emplace_back([h] {
        for (uint64_t i = 0; i < 3000; ++i)
          h->hit(0, i % 7, i % 3);
      });
    }
  }
  for (auto& w : workers)
    w.join();
  EXPECT_EQ(fast.map(0), slow.map(0));
  EXPECT_EQ(fast.reader().probe_hits(0), 9000u);
  EXPECT_EQ(slow.reader().probe_hits(0), 9000u);
  EXPECT_NE(
      reinterpret_cast<abi::ProbeEntry*>(fast.region().data() + fast.layout().probes.offset)->fast,
      abi::kFastNone);
}

TEST_P(FastPathRuns, CountMatchesTheInterpreter) {
  compare_with_interpreter(GetParam(), kSharedCount);
}

TEST_P(FastPathRuns, HitCountedMapIsTheProbesHits) {
  Harness h("uprobe:/bin/true:f { @ = count(); } uprobe:/bin/true:g { @ = count(); }", GetParam());
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&h, t] {
      for (uint64_t i = 0; i < 3000; ++i)
        h.hit(static_cast<uint32_t>(i % 2), i, t);
    });
  }
  for (auto& w : workers)
    w.join();
  EXPECT_TRUE(h.reader().map_entries(0).empty()) << "no table entry is ever written";
  EXPECT_EQ(h.reader().probe_hits(0) + h.reader().probe_hits(1), 9000u);
  EXPECT_EQ(h.scalar(0), 9000u);
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
}

TEST_P(FastPathRuns, CountByArgumentMatchesTheInterpreter) {
  compare_with_interpreter(GetParam(), "uprobe:/bin/true:f { @[arg1] = count(); }");
}

TEST_P(FastPathRuns, WrongHintsAreHarmless) {
  Harness h("uprobe:/bin/true:f { @a[arg0] = count(); @b = count(); }", GetParam());
  auto* entry = reinterpret_cast<abi::ProbeEntry*>(h.region().data() + h.layout().probes.offset);
  h.hit(0, 1);
  entry->fast = abi::kFastCountByArg; // names map 1, which has no keys: refused
  entry->fast_map = 1;
  h.hit(0, 1);
  entry->fast_map = 1000; // no such map
  h.hit(0, 1);
  entry->fast = 77; // no such shape
  h.hit(0, 1);
  entry->fast = abi::kFastCount; // names map 0, which has keys: refused
  entry->fast_map = 0;
  h.hit(0, 1);
  EXPECT_EQ(h.map(0).at(testing::int_key(1)), 5u);
  EXPECT_EQ(h.scalar(1), 5u);
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(Agents, FastPathRuns,
                         ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
