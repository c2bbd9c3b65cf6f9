#include "probes/interval_timers.h"

#include <time.h>

#include <algorithm>

#include "probes/probe_session.h"

namespace dprobe::probes {

IntervalTimers::IntervalTimers(const lang::CompiledScript& script, uint64_t start_ns) {
  for (const auto& block : script.probes) {
    for (size_t point = 0; point < block.attach_points.size(); ++point) {
      const lang::AttachPoint& ap = block.attach_points[point];
      if (ap.kind != lang::ProbeKind::Interval || ap.interval_ns == 0) continue;
      timers_.push_back(Timer{block.program_for(point), ap.interval_ns, start_ns + ap.interval_ns});
    }
  }
}

std::vector<uint32_t> IntervalTimers::take_due(uint64_t now_ns) {
  std::vector<uint32_t> due;
  for (Timer& timer : timers_) {
    if (timer.due_ns > now_ns) continue;
    due.push_back(timer.program);
    timer.due_ns += timer.period_ns;
    if (timer.due_ns <= now_ns) timer.due_ns = now_ns + timer.period_ns;
  }
  return due;
}

int IntervalTimers::wait_ms(uint64_t now_ns, int cap_ms) const {
  uint64_t wait_ns = static_cast<uint64_t>(std::max(cap_ms, 0)) * 1'000'000;
  for (const Timer& timer : timers_) {
    wait_ns = std::min(wait_ns, timer.due_ns > now_ns ? timer.due_ns - now_ns : 0);
  }
  return static_cast<int>((wait_ns + 999'999) / 1'000'000);
}

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void run_due_intervals(IntervalTimers& timers, runtime::ProbeRuntime& runtime) {
  if (timers.empty()) return;
  for (uint32_t program : timers.take_due(monotonic_ns())) {
    run_program_in_dprobe(program, runtime);
    if (runtime.exit_requested()) return;
  }
}

} // namespace dprobe::probes
