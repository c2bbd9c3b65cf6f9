// count() through the dispatcher: exact from one and from several threads, on the per-thread
// path and on every shared fallback path.
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "agent_harness.h"
#include "bytecode/isa.h"
#include "bytecode/vm.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

constexpr uint64_t kHits = 100000;

class Dispatch : public ::testing::TestWithParam<AgentKind> {};

void hit_from_threads(Harness& h, int threads, uint64_t hits, uint32_t probe = 0) {
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&h, hits, probe] {
      for (uint64_t i = 0; i < hits; ++i)
        h.hit(probe);
    });
  }
  for (auto& w : workers)
    w.join();
}

uint32_t claimed_slots(const Harness& h) {
  const auto* slots =
      reinterpret_cast<const abi::ThreadSlot*>(h.region().data() + h.layout().thread_slots.offset);
  uint32_t n = 0;
  for (uint32_t i = 0; i < h.layout().thread_slot_count; ++i)
    n += slots[i].key != 0;
  return n;
}

TEST_P(Dispatch, CountFromOneThreadIsExact) {
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  for (uint64_t i = 0; i < kHits; ++i)
    h.hit(0);
  EXPECT_EQ(h.scalar(0), kHits);
  EXPECT_EQ(h.reader().probe_hits(0), kHits);
  const auto c = h.reader().counters();
  EXPECT_EQ(c.vm_errors, 0u);
  EXPECT_EQ(c.dropped_hits, 0u);
  EXPECT_EQ(c.dropped_map_updates, 0u);
  if (testing::host_features() & abi::kFeatureFsGsBase) {
    EXPECT_EQ(c.fallback_hits, 0u) << "the common path must not be the atomic fallback";
    EXPECT_EQ(claimed_slots(h), 1u);
  }
}

TEST_P(Dispatch, CountFromFourThreadsIsExact) {
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  hit_from_threads(h, 4, kHits);
  EXPECT_EQ(h.scalar(0), 4 * kHits);
  EXPECT_EQ(h.reader().probe_hits(0), 4 * kHits);
  EXPECT_EQ(h.reader().counters().dropped_hits, 0u);
  if (testing::host_features() & abi::kFeatureFsGsBase) {
    EXPECT_EQ(claimed_slots(h), 4u) << "one private slot per thread";
  }
}

TEST_P(Dispatch, ThreadsWriteNoSharedLinePair) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  // Two threads' blocks and map tables, written on every hit, must not share a 128-byte pair of
  // cache lines (the adjacent-line prefetcher would bounce it between the cores).
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  hit_from_threads(h, 2, 10);
  const auto* slots =
      reinterpret_cast<const abi::ThreadSlot*>(h.region().data() + h.layout().thread_slots.offset);
  std::vector<std::pair<uint64_t, uint64_t>> written; // [begin, end) per thread
  for (uint32_t i = 0; i < h.layout().thread_slot_count; ++i) {
    if (slots[i].key == 0) continue;
    const uint64_t block = slots[i].block;
    ASSERT_NE(block, 0u);
    EXPECT_EQ(block % abi::kArenaAlign, 0u);
    const uint64_t block_end = block + abi::thread_block_size(h.layout().probe_capacity, 1);
    uint64_t table = 0;
    std::memcpy(&table, h.region().data() + block + 8ull * h.layout().probe_capacity, 8);
    ASSERT_NE(table, 0u);
    EXPECT_EQ(table % abi::kArenaAlign, 0u);
    written.emplace_back(block / 128, (block_end + 127) / 128);
    written.emplace_back(table / 128, (table + abi::map_table_size(0, 1) + 127) / 128);
  }
  ASSERT_EQ(written.size(), 4u);
  for (size_t a = 0; a < 2; ++a) {
    for (size_t b = 2; b < 4; ++b) {
      const bool overlap =
          written[a].first < written[b].second && written[b].first < written[a].second;
      EXPECT_FALSE(overlap) << "line pairs " << written[a].first << " and " << written[b].first;
    }
  }
  EXPECT_EQ(h.scalar(0), 20u);
}

TEST_P(Dispatch, CountWithTlsSelfPointerIdentityIsExact) {
  RegionOptions options = Harness::default_options();
  options.features |= abi::kFeatureTlsSelfPointer; // glibc: fs:0 holds the fs base
  Harness h("uprobe:/bin/true:main { @ = count(); @k[arg0] = count(); }"
            "uprobe:/bin/true:f { @c[arg1] = count(); }",
            GetParam(), options);
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&h] {
      for (uint64_t i = 0; i < kHits / 10; ++i) {
        h.hit(0, i % 3);
        h.hit(1, 0, i % 5);
      }
    });
  }
  for (auto& w : workers)
    w.join();
  EXPECT_EQ(h.scalar(0), 4 * (kHits / 10));
  uint64_t keyed = 0;
  for (const auto& [key, value] : h.map(2))
    keyed += value;
  EXPECT_EQ(keyed, 4 * (kHits / 10));
  EXPECT_EQ(h.map(2).size(), 5u);
  EXPECT_EQ(h.reader().counters().fallback_hits, 0u);
  EXPECT_EQ(claimed_slots(h), 4u);
}

TEST_P(Dispatch, FeaturesChangeWhileRunning) {
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  h.hit(0);
  set_features(h.region(), h.layout(), testing::host_features() | abi::kFeatureTlsSelfPointer);
  h.hit(0);
  set_features(h.region(), h.layout(), 0);
  h.hit(0);
  EXPECT_EQ(h.scalar(0), 3u);
  // Without FSGSBASE the first hit has no thread identity either.
  const bool fsgsbase = (testing::host_features() & abi::kFeatureFsGsBase) != 0;
  EXPECT_EQ(h.reader().counters().fallback_hits, fsgsbase ? 1u : 2u);
  if (testing::host_features() & abi::kFeatureFsGsBase) {
    EXPECT_EQ(claimed_slots(h), 1u) << "rdfsbase and fs:0 name the same slot";
  }
}

TEST_P(Dispatch, CountWithoutFsGsBaseUsesTheSharedPathExactly) {
  RegionOptions options = Harness::default_options();
  options.features = 0;
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam(), options);
  hit_from_threads(h, 4, kHits / 4);
  EXPECT_EQ(h.scalar(0), kHits);
  EXPECT_EQ(h.reader().probe_hits(0), kHits);
  EXPECT_EQ(h.reader().counters().fallback_hits, kHits);
  EXPECT_EQ(claimed_slots(h), 0u);
}

TEST_P(Dispatch, FullThreadTableFallsBackExactly) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  RegionOptions options = Harness::default_options();
  options.thread_slots = 1;
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam(), options);
  h.hit(0); // this thread takes the only slot
  hit_from_threads(h, 3, kHits / 4);
  EXPECT_EQ(h.scalar(0), 1 + 3 * (kHits / 4));
  EXPECT_EQ(h.reader().probe_hits(0), 1 + 3 * (kHits / 4));
  EXPECT_EQ(h.reader().counters().fallback_hits, 3 * (kHits / 4));
}

TEST_P(Dispatch, NoRoomForLevelScratchRunsOnThePoolExactly) {
  RegionOptions options = Harness::default_options();
  options.arena_bytes = 4096; // thread blocks and tables fit, a VmState never does
  options.features |= abi::kFeatureTlsSelfPointer;
  // @ is updated by a second program too, so the interpreter (and its VmState) counts it.
  Harness h("uprobe:/bin/true:main { @ = count(); } uprobe:/bin/true:f { @ = count(); @x = 1; }",
            GetParam(), options);
  hit_from_threads(h, 2, kHits / 10);
  EXPECT_EQ(h.scalar(0), 2 * (kHits / 10));
  EXPECT_EQ(h.reader().probe_hits(0), 2 * (kHits / 10));
  const auto c = h.reader().counters();
  EXPECT_GT(c.arena_exhausted, 0u);
  EXPECT_EQ(c.dropped_map_updates, 0u);
  EXPECT_EQ(c.dropped_hits, 0u);
}

TEST_P(Dispatch, NoArenaAtAllStillCountsHitsAndCountsTheDroppedUpdates) {
  RegionOptions options = Harness::default_options();
  options.arena_bytes = 64; // one thread block, nothing else
  Harness h("uprobe:/bin/true:main { @ = count(); } uprobe:/bin/true:f { @ = count(); @x = 1; }",
            GetParam(), options);
  hit_from_threads(h, 2, kHits / 10);
  EXPECT_EQ(h.scalar(0), 0u);
  EXPECT_EQ(h.reader().probe_hits(0), 2 * (kHits / 10));
  EXPECT_EQ(h.reader().counters().dropped_map_updates, 2 * (kHits / 10));
}

TEST_P(Dispatch, HitCountedMapNeedsNoArena) {
  RegionOptions options = Harness::default_options();
  options.arena_bytes = 64;
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam(), options);
  hit_from_threads(h, 2, kHits / 10);
  EXPECT_EQ(h.scalar(0), 2 * (kHits / 10));
  EXPECT_EQ(h.reader().counters().dropped_map_updates, 0u);
}

// A forked child's thread has its parent's fs base: with kFeatureTlsTid it still gets a slot of
// its own in the region both share, so both count exactly and each with its own pid.
TEST_P(Dispatch, ForkedChildCountsIntoASlotOfItsOwn) {
  RegionOptions options = Harness::default_options();
  options.features |= abi::kFeatureTlsSelfPointer | abi::kFeatureTlsTid;
  options.tls_tid_offset = abi::kGlibcTlsTidOffset;
  Harness h("uprobe:/bin/true:main { @c = count(); @p[pid] = count(); }", GetParam(), options);
  h.hit(0); // the parent's slot exists before the fork
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (uint64_t i = 0; i < kHits; ++i)
      h.hit(0);
    _exit(0);
  }
  for (uint64_t i = 0; i < kHits; ++i)
    h.hit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(h.scalar(0), 2 * kHits + 1);
  const auto per_pid = h.map(1);
  ASSERT_EQ(per_pid.size(), 2u);
  EXPECT_EQ(per_pid.at(testing::int_key(static_cast<uint64_t>(getpid()))), kHits + 1);
  EXPECT_EQ(per_pid.at(testing::int_key(static_cast<uint64_t>(child))), kHits);
  EXPECT_EQ(claimed_slots(h), 2u);
  EXPECT_EQ(h.reader().counters().fallback_hits, 0u);
}

TEST_P(Dispatch, KeyedCountPerArgument) {
  Harness h("uprobe:/bin/true:main { @c[arg0] = count(); }", GetParam());
  for (uint64_t key = 0; key < 10; ++key) {
    for (uint64_t i = 0; i <= key; ++i)
      h.hit(0, key * 1000);
  }
  const auto m = h.map(0);
  ASSERT_EQ(m.size(), 10u);
  for (uint64_t key = 0; key < 10; ++key)
    EXPECT_EQ(m.at(testing::int_key(key * 1000)), key + 1);
}

TEST_P(Dispatch, KeyedCountFromFourThreadsMergesShards) {
  Harness h("uprobe:/bin/true:main { @c[arg0] = count(); }", GetParam());
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&h] {
      for (uint64_t i = 0; i < 8000; ++i)
        h.hit(0, i % 8);
    });
  }
  for (auto& w : workers)
    w.join();
  const auto m = h.map(0);
  ASSERT_EQ(m.size(), 8u);
  for (uint64_t key = 0; key < 8; ++key)
    EXPECT_EQ(m.at(testing::int_key(key)), 4000u);
}

TEST_P(Dispatch, DisabledRegionAndProbeCountNothing) {
  Harness h("uprobe:/bin/true:main { @a = count(); } uprobe:/bin/true:f { @b = count(); }",
            GetParam());
  set_enabled(h.region(), h.layout(), false);
  h.hit(0);
  h.hit(1);
  set_enabled(h.region(), h.layout(), true);
  ASSERT_TRUE(set_probe_enabled(h.region(), h.layout(), 1, false).has_value());
  h.hit(0);
  h.hit(1);
  EXPECT_EQ(h.scalar(0), 1u);
  EXPECT_EQ(h.scalar(1), 0u);
  EXPECT_EQ(h.reader().probe_hits(0), 1u);
  EXPECT_EQ(h.reader().probe_hits(1), 0u);
}

TEST_P(Dispatch, BadProbeIdIsCountedAndIgnored) {
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  h.hit(7);
  h.hit(0xffffffff);
  EXPECT_EQ(h.reader().counters().bad_probe_ids, 2u);
  EXPECT_EQ(h.scalar(0), 0u);
}

TEST_P(Dispatch, ProgramsOfOneSiteRunInOrder) {
  std::vector<ProbeSpec> probes;
  bytecode::Module module = testing::compile_script(
      "uprobe:/bin/true:main { @order = 1; } uprobe:/bin/true:main { @order = 2; }", &probes);
  ASSERT_EQ(probes.size(), 2u);
  std::vector<ProbeSpec> site{
      ProbeSpec{{probes[0].programs[0], probes[1].programs[0]}, 0, 0, true}};
  Harness h(module, site, GetParam());
  h.hit(0);
  EXPECT_EQ(h.scalar(0), 2u) << "the second program ran last";
  site[0].programs = {probes[1].programs[0], probes[0].programs[0]};
  ASSERT_TRUE(write_probe(h.region(), h.layout(), h.module(), 0, site[0]).has_value());
  h.hit(0);
  EXPECT_EQ(h.scalar(0), 1u);
}

TEST_P(Dispatch, InvalidRegionIsIgnoredAndCounted) {
  Harness h("uprobe:/bin/true:main { @ = count(); }", GetParam());
  h.header()->code.offset = h.header()->size + 4096; // before the first hit validates it
  h.hit(0);
  h.hit(0);
  EXPECT_EQ(h.header()->module_state, abi::kModuleInvalid);
  EXPECT_EQ(h.reader().counters().invalid_region, 2u);
  EXPECT_EQ(h.reader().probe_hits(0), 0u);
}

TEST_P(Dispatch, VmFaultIsCountedWithItsStatus) {
  bytecode::Module module;
  bytecode::Program p;
  p.name = "bad";
  p.code = {bytecode::Insn{bytecode::Op::Mov, 200, 0, 0, 0, 0}}; // register 200 does not exist
  module.programs.push_back(p);
  Harness h(module, {ProbeSpec{{0}, 0, 0, true}}, GetParam());
  h.hit(0);
  const auto c = h.reader().counters();
  EXPECT_EQ(c.vm_errors, 1u);
  EXPECT_EQ(c.last_vm_status, static_cast<uint64_t>(bytecode::VmStatus::BadRegister));
  EXPECT_EQ(h.reader().probe_hits(0), 1u);
}

TEST_P(Dispatch, ExitSetsTheFlag) {
  Harness h("uprobe:/bin/true:main { exit(); }", GetParam());
  EXPECT_FALSE(h.reader().exit_requested());
  h.hit(0);
  EXPECT_TRUE(h.reader().exit_requested());
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(Agents, Dispatch, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
