// Machine-wide probes: without -p or -c, a probe on a file applies to every process that maps
// the file, the ones running now and the ones that start while dprobe runs.
#pragma once

#include <atomic>

#include "common/result.h"
#include "lang/compiler.h"
#include "probes/probe_session.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {

/// Runs `script` in every process that maps the files of all its uprobes (found in /proc by
/// device and inode, again every few milliseconds for processes that start or exec later), one
/// probe session per process on a thread of its own, each with a runtime of its own whose maps
/// are merged into `runtime` when its process ends or the run stops. BEGIN, interval probes and
/// the "Attaching" line run here, once. `options.pid` and `options.command` are ignored.
/// Processes that cannot be probed (not ours to trace, already traced) are skipped with a note.
/// Ends on `stop`, on exit() in any program, never because no process is left.
[[nodiscard]] Result<SessionEnd> run_machine_wide(const lang::CompiledScript& script,
                                                  runtime::ProbeRuntime& runtime,
                                                  const SessionOptions& options,
                                                  const std::atomic<bool>& stop);

}  // namespace dprobe::probes
