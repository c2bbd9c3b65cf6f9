#include "probes/xol_area.h"

#include <sys/mman.h>

namespace dprobe::probes {
namespace {

// Keeps a margin below the rel32 limit for the jump back and literal displacements inside a slot.
constexpr int64_t kReach = (int64_t{1} << 31) - (int64_t{1} << 24);

bool within_reach(uint64_t a, uint64_t b) {
  int64_t d = static_cast<int64_t>(a - b);
  return d < kReach && d > -kReach;
}

}  // namespace

Result<uint64_t> XolArea::allocate(process::Tracee& tracee, pid_t tid, uint64_t near,
                                   size_t size) {
  size = (size + 15) & ~size_t{15};  // keep slots 16-byte aligned
  if (size > kRegionSize) return fail("out-of-line slot of {} bytes is too large", size);
  for (auto& region : regions_) {
    if (region.used + size <= kRegionSize && within_reach(region.start, near)) {
      uint64_t slot = region.start + region.used;
      region.used += size;
      return slot;
    }
  }
  auto start = tracee.map_memory_near(tid, near, kRegionSize, PROT_READ | PROT_EXEC);
  if (!start) return with_context(start.error(), "mapping out-of-line slots");
  regions_.push_back(Region{*start, size});
  return *start;
}

}  // namespace dprobe::probes
