// The whole run against one process: spec -> sites -> plan -> patch -> hits, until the target
// exits, the user stops dprobe, or the script calls exit().
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "lang/compiler.h"
#include "process/ptrace_calls.h"
#include "probes/probe_site.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {

/// A fork child whose breakpoints need dprobe on every hit (int3-ptrace), parked by the session
/// that traced its parent until a session of its own (on another thread: ptrace ties a tracee
/// to one tracer thread) takes it: its thread sleeps in a bounded ppoll (every signal blocked
/// meanwhile) instead of returning from fork. `regs` are its registers as fork returned.
struct ParkedChild {
  process::Registers regs{};
};

struct SessionOptions {
  std::vector<std::string> command;  ///< -c: launch this command (argv)
  pid_t pid = 0;                     ///< -p: attach to this running process
  bool verbose = false;              ///< -v: print each site, its mechanism and why
  std::optional<Mechanism> mechanism;  ///< --mechanism: use this one or refuse the probe
  std::FILE* diagnostics = stderr;   ///< where -v lines and notes go
  std::string working_directory;     ///< relative probe paths resolve against this
  /// Called once every probe is armed, before BEGIN runs and the target resumes (bpftrace
  /// prints "Attaching N probes..." only once attaching succeeded), with the number of probes
  /// as bpftrace counts them: each match of a wildcard is one.
  std::function<void(size_t probes)> on_armed;
  /// Run BEGIN and the interval probes in this session. Off for the per-process sessions of a
  /// machine-wide run, which runs them once for all.
  bool run_script_probes = true;
  /// Machine-wide: process `pid` is inside execve, held there by a fanotify permission event.
  /// The session seizes it, calls this (which lets the exec go on), and arms the new image
  /// before its first instruction.
  std::function<void()> exec_seized;
  /// -p on a fork child parked by its parent's session: its registers are put back as soon as
  /// it is attached, then it is probed as any -p process (its code is the file's again).
  std::optional<ParkedChild> parked;
};

/// Why the session ended.
enum class SessionEnd { TargetExited, StopRequested, ScriptExit };

/// Runs `script` against the process named by `options`. `stop` is polled between events
/// (set by SIGINT/SIGTERM). On return the target is detached with every original byte back
/// (or has exited). Errors before arming leave the target untouched.
[[nodiscard]] Result<SessionEnd> run_session(const lang::CompiledScript& script,
                                             runtime::ProbeRuntime& runtime,
                                             const SessionOptions& options,
                                             const std::atomic<bool>& stop);

/// Runs the programs of BEGIN or END blocks (in dprobe's own context, as bpftrace does).
void run_special_probes(const lang::CompiledScript& script, runtime::ProbeRuntime& runtime,
                        lang::ProbeKind kind);

/// Runs one program in dprobe's own context (pid and comm are dprobe's, no target memory):
/// BEGIN, END and interval probes.
void run_program_in_dprobe(uint32_t program, runtime::ProbeRuntime& runtime);

/// Adds every map entry of `from` into `into` (the runtimes of several processes' sessions),
/// and moves the stacks its keys name.
void merge_maps(const lang::CompiledScript& script, runtime::ProbeRuntime& from,
                runtime::ProbeRuntime& into);

/// Number of attach points, as bpftrace's "Attaching N probes..." counts them.
[[nodiscard]] size_t count_attach_points(const lang::CompiledScript& script);

}  // namespace dprobe::probes
