#include "probes/interval_timers.h"

#include <gtest/gtest.h>

#include "lang/compiler.h"

namespace dprobe::probes {
namespace {

lang::CompiledScript compile_ok(std::string_view source) {
  auto script = lang::compile(source, "stdin");
  EXPECT_TRUE(script.has_value()) << (script ? "" : script.error().message);
  return script ? std::move(*script) : lang::CompiledScript{};
}

constexpr uint64_t kMs = 1'000'000;

TEST(IntervalTimers, OnlyIntervalProbesAreTimers) {
  const auto script = compile_ok("BEGIN { exit(); } END { exit(); }");
  IntervalTimers timers(script, 0);
  EXPECT_TRUE(timers.empty());
  EXPECT_TRUE(timers.take_due(UINT64_MAX / 2).empty());
  EXPECT_EQ(timers.wait_ms(0, 100), 100);
}

TEST(IntervalTimers, FirstRunAfterOnePeriodThenEveryPeriod) {
  // Program 0 is BEGIN, program 1 the interval.
  const auto script = compile_ok("BEGIN { exit(); } interval:ms:100 { exit(); }");
  IntervalTimers timers(script, 1000 * kMs);
  EXPECT_EQ(timers.wait_ms(1000 * kMs, 500), 100);
  EXPECT_TRUE(timers.take_due(1099 * kMs).empty());
  EXPECT_EQ(timers.wait_ms(1099 * kMs + 1, 500), 1); // rounded up, never 0 early
  EXPECT_EQ(timers.take_due(1100 * kMs), std::vector<uint32_t>{1});
  EXPECT_TRUE(timers.take_due(1100 * kMs).empty());
  EXPECT_EQ(timers.wait_ms(1150 * kMs, 500), 50);
  EXPECT_EQ(timers.take_due(1203 * kMs), std::vector<uint32_t>{1});
  // The schedule stays on the grid of the start time despite the late wake-up.
  EXPECT_EQ(timers.wait_ms(1203 * kMs, 500), 97);
}

TEST(IntervalTimers, LateTimerRunsOnceAndRestarts) {
  const auto script = compile_ok("interval:ms:10 { exit(); }");
  IntervalTimers timers(script, 0);
  // dprobe was busy for 10 periods: one run, not a burst of ten.
  EXPECT_EQ(timers.take_due(105 * kMs), std::vector<uint32_t>{0});
  EXPECT_TRUE(timers.take_due(105 * kMs).empty());
  EXPECT_EQ(timers.wait_ms(105 * kMs, 500), 10);
}

TEST(IntervalTimers, SeveralTimersInScriptOrder) {
  const auto script = compile_ok(
      "interval:ms:30 { exit(); } interval:ms:20 { exit(); } i:hz:100, interval:ms:10 { exit(); }");
  IntervalTimers timers(script, 0);
  EXPECT_EQ(timers.wait_ms(0, 1000), 10);
  EXPECT_EQ(timers.take_due(10 * kMs), (std::vector<uint32_t>{2, 2}));
  EXPECT_EQ(timers.take_due(20 * kMs), (std::vector<uint32_t>{1, 2, 2}));
  EXPECT_EQ(timers.take_due(30 * kMs), (std::vector<uint32_t>{0, 2, 2}));
  EXPECT_EQ(timers.wait_ms(30 * kMs, 1000), 10);
}

} // namespace
} // namespace dprobe::probes
