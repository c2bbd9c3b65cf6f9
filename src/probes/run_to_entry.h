// Lets a freshly launched program run its dynamic loader up to the program's entry point,
// so the libraries it needs are mapped before probes are resolved.
#pragma once

#include "common/result.h"
#include "process/tracee.h"

namespace dprobe::probes {

/// Precondition: the process is stopped at its first instruction (after execve). On success
/// it is stopped at AT_ENTRY with the entry's original byte in place.
[[nodiscard]] Status run_to_entry(process::Tracee& tracee);

}  // namespace dprobe::probes
