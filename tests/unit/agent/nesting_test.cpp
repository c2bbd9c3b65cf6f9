// Nesting: a signal handler that interrupts the agent may hit another probe; both complete,
// each on its own per-thread level, and hits beyond the last level are counted as dropped.
#include <gtest/gtest.h>

#include <asm/prctl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

class Nesting : public ::testing::TestWithParam<AgentKind> {};

abi::ThreadSlot* my_slot(const Harness& h) {
  uint64_t fs = 0;
  syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
  auto* slots =
      reinterpret_cast<abi::ThreadSlot*>(h.region().data() + h.layout().thread_slots.offset);
  for (uint32_t i = 0; i < h.layout().thread_slot_count; ++i) {
    if (slots[i].key == fs) return &slots[i];
  }
  return nullptr;
}

TEST_P(Nesting, EveryLevelRunsAndDeeperHitsUseThePool) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  for (uint32_t pool : {4u, 0u}) {
    RegionOptions options = Harness::default_options();
    options.scratch_states = pool;
    // Not a bare count(): the fast path needs no scratch, this one runs the interpreter.
    Harness h("uprobe:/bin/true:f { @ = count(); @last = arg0; }", GetParam(), options);
    h.hit(0);
    abi::ThreadSlot* slot = my_slot(h);
    ASSERT_NE(slot, nullptr);
    // As if hits were in progress below us.
    for (uint32_t depth = 1; depth < abi::kMaxNesting; ++depth) {
      slot->depth = depth;
      h.hit(0);
      EXPECT_EQ(slot->depth, depth) << "restored on the way out";
      EXPECT_NE(slot->levels[depth], 0u) << "scratch for level " << depth;
    }
    slot->depth = abi::kMaxNesting;
    h.hit(0);
    EXPECT_EQ(slot->depth, abi::kMaxNesting);
    slot->depth = 0;
    EXPECT_EQ(h.reader().probe_hits(0), abi::kMaxNesting + 1);
    if (pool != 0) {
      EXPECT_EQ(h.scalar(0), abi::kMaxNesting + 1);
      EXPECT_EQ(h.reader().counters().dropped_hits, 0u);
    } else {
      EXPECT_EQ(h.scalar(0), abi::kMaxNesting);
      EXPECT_EQ(h.reader().counters().dropped_hits, 1u);
    }
  }
}

struct SignalProbe {
  const Harness* harness = nullptr;
  std::atomic<uint64_t> handled{0};
};
SignalProbe g_signal_probe; // the handler's only way to the harness

void on_timer(int) {
  abi::SavedRegisters regs{};
  regs.rdi = g_signal_probe.handled.load(std::memory_order_relaxed);
  g_signal_probe.harness->hit_with(1, regs);
  g_signal_probe.handled.fetch_add(1, std::memory_order_relaxed);
}

constexpr const char* kInterpreted =
    "uprobe:/bin/true:f { @a = count(); @k[arg0] = count(); }"
    "uprobe:/bin/true:g { @b = count(); printf(\"%d\\n\", arg0); }";

void run_signal_nesting(AgentKind kind, uint32_t features, const char* script = kInterpreted) {
  RegionOptions options = Harness::default_options();
  options.features = features;
  options.ring_bytes = 1u << 20;
  Harness h(script, kind, options);
  const bool interpreted = script == kInterpreted;
  g_signal_probe.harness = &h;
  g_signal_probe.handled = 0;

  struct sigaction sa = {};
  struct sigaction old = {};
  sa.sa_handler = &on_timer;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  sigevent sev = {};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGUSR1;
  sev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid)); // sigev_notify_thread_id
  timer_t timer;
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
  itimerspec spec = {};
  spec.it_value.tv_nsec = 20000;
  spec.it_interval.tv_nsec = 20000;
  ASSERT_EQ(timer_settime(timer, 0, &spec, nullptr), 0);

  uint64_t hits = 0;
  while (g_signal_probe.handled.load() < 2000 && hits < 50000000)
    h.hit(0, hits++ & 7);

  timer_delete(timer);
  sigaction(SIGUSR1, &old, nullptr);
  const uint64_t handled = g_signal_probe.handled.load();
  g_signal_probe.harness = nullptr;

  EXPECT_GE(handled, 2000u);
  EXPECT_EQ(h.reader().probe_hits(0), hits);
  EXPECT_EQ(h.reader().probe_hits(1), handled);
  EXPECT_EQ(h.reader().counters().dropped_hits, 0u);
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
  if (!interpreted) { // "f { @a[arg0] = count(); } g { @b = count(); }", both on the fast path
    uint64_t keyed = 0;
    for (const auto& [key, value] : h.map(0))
      keyed += value;
    EXPECT_EQ(keyed, hits);
    EXPECT_EQ(h.scalar(1), handled);
    return;
  }
  EXPECT_EQ(h.scalar(0), hits);
  uint64_t keyed = 0;
  for (const auto& [key, value] : h.map(1))
    keyed += value;
  EXPECT_EQ(keyed, hits);
  EXPECT_EQ(h.scalar(2), handled);
  std::vector<PrintfEvent> events;
  EXPECT_EQ(h.reader().drain_events(events), handled);
  for (uint64_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(bytecode::load_u64_le(events[i].args.data()), i);
  }
}

TEST_P(Nesting, SignalHandlerHitsDuringHitsOnThePerThreadPath) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  run_signal_nesting(GetParam(), abi::kFeatureFsGsBase);
}

TEST_P(Nesting, SignalHandlerHitsDuringFastPathHits) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  run_signal_nesting(
      GetParam(), abi::kFeatureFsGsBase,
      "uprobe:/bin/true:f { @a[arg0] = count(); } uprobe:/bin/true:g { @b = count(); }");
}

TEST_P(Nesting, SignalHandlerHitsWithTlsSelfPointerIdentity) {
  run_signal_nesting(
      GetParam(), testing::host_features() | abi::kFeatureTlsSelfPointer,
      "uprobe:/bin/true:f { @a[arg0] = count(); } uprobe:/bin/true:g { @b = count(); }");
  run_signal_nesting(GetParam(), testing::host_features() | abi::kFeatureTlsSelfPointer);
}

TEST_P(Nesting, SignalHandlerHitsDuringHitsOnTheSharedPath) {
  run_signal_nesting(GetParam(), 0);
}

INSTANTIATE_TEST_SUITE_P(Agents, Nesting, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
