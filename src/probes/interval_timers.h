// interval:UNIT:N probes: programs dprobe runs itself, on a timer, next to the target's hits.
#pragma once

#include <cstdint>
#include <vector>

#include "lang/compiler.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {

/// The schedule of a script's interval probes on one monotonic clock (nanoseconds). Pure: the
/// caller says what time it is, so the schedule is testable without sleeping.
class IntervalTimers {
 public:
  /// Every interval attach point of `script`; the first run of each is one period after
  /// `start_ns` (bpftrace's perf timers also fire first after a whole period).
  IntervalTimers(const lang::CompiledScript& script, uint64_t start_ns);

  [[nodiscard]] bool empty() const { return timers_.empty(); }
  /// Programs due at `now_ns`, in script order, each at most once per call. Each due timer is
  /// rescheduled one period later; a timer that fell a whole period behind (dprobe was busy)
  /// restarts from `now_ns` instead of firing a burst of late runs.
  [[nodiscard]] std::vector<uint32_t> take_due(uint64_t now_ns);
  /// Milliseconds until the next timer is due (rounded up), capped at `cap_ms`; `cap_ms` when
  /// there are no timers.
  [[nodiscard]] int wait_ms(uint64_t now_ns, int cap_ms) const;

 private:
  struct Timer {
    uint32_t program;
    uint64_t period_ns;
    uint64_t due_ns;
  };
  std::vector<Timer> timers_;
};

/// CLOCK_MONOTONIC in nanoseconds.
[[nodiscard]] uint64_t monotonic_ns();

/// Runs the interval programs due now (in dprobe's own context, as BEGIN and END).
void run_due_intervals(IntervalTimers& timers, runtime::ProbeRuntime& runtime);

} // namespace dprobe::probes
