#include "process/near_gap.h"

#include <algorithm>

namespace dprobe::process {
namespace {

uint64_t align_down(uint64_t v, uint64_t a) {
  return v & ~(a - 1);
}
uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}
uint64_t distance(uint64_t a, uint64_t b) {
  return a > b ? a - b : b - a;
}

struct Range {
  uint64_t lo;
  uint64_t hi; // exclusive
};

} // namespace

std::vector<uint64_t> candidate_addresses_near(std::span<const Mapping> maps, uint64_t near,
                                               uint64_t length, uint64_t page_size) {
  std::vector<uint64_t> out;
  if (length == 0) return out;
  length = align_up(length, page_size);
  if (length > kNearReach) return out;

  // Every byte of [addr, addr + length) must lie in the window.
  Range window{near > kNearReach ? near - kNearReach : 0, near + kNearReach};
  window.lo = std::max(window.lo, kLowestAddress);
  window.hi = std::min(window.hi, kHighestAddress);

  std::vector<Range> used;
  for (const auto& m : maps) {
    uint64_t lo = m.start > page_size ? m.start - page_size : 0;
    if (m.path == "[stack]") lo = m.start > kStackReserve ? m.start - kStackReserve : 0;
    used.push_back({lo, m.end + page_size});
  }
  std::sort(used.begin(), used.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });

  std::vector<Range> gaps;
  uint64_t cursor = 0;
  for (const auto& u : used) {
    if (u.lo > cursor) gaps.push_back({cursor, u.lo});
    cursor = std::max(cursor, u.hi);
  }
  gaps.push_back({cursor, UINT64_MAX});

  std::vector<std::pair<uint64_t, uint64_t>> scored; // distance, address
  for (Range g : gaps) {
    uint64_t lo = align_up(std::max(g.lo, window.lo), page_size);
    uint64_t hi = align_down(std::min(g.hi, window.hi), page_size);
    if (hi <= lo || hi - lo < length) continue;
    // The point of [lo, hi - length] closest to `near`, page aligned.
    uint64_t last = hi - length;
    uint64_t addr = std::clamp(align_down(near, page_size), lo, last);
    // The farthest byte must stay in reach too (the window already ensures it).
    scored.emplace_back(std::max(distance(addr, near), distance(addr + length, near)), addr);
  }
  std::sort(scored.begin(), scored.end());
  for (const auto& [d, addr] : scored)
    out.push_back(addr);
  return out;
}

} // namespace dprobe::process
