// Out-of-line slots in the target: where copies of probed instructions run.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/result.h"
#include "process/tracee.h"

namespace dprobe::probes {

/// Hands out fixed-size slots from executable pages mapped in the target near the code they
/// serve (within rel32 reach, so RIP-relative operands and jumps can be relocated).
/// Pages are never unmapped: a thread interrupted inside a slot may return to it later,
/// so released slots stay as inert, complete code (instruction + jump back).
class XolArea {
 public:
  static constexpr size_t kSlotSize = 64;
  static constexpr size_t kRegionSize = 4096;

  /// Returns a slot address within +-2 GiB of `near`. The world must be stopped: mapping a
  /// region runs a system call in thread `tid`.
  [[nodiscard]] Result<uint64_t> allocate(process::Tracee& tracee, pid_t tid, uint64_t near,
                                          size_t size = kSlotSize);

 private:
  struct Region {
    uint64_t start = 0;
    size_t used = 0;
  };
  std::vector<Region> regions_;
};

}  // namespace dprobe::probes
