// Decoding of waitpid() statuses of ptrace tracees (attached with PTRACE_SEIZE). Pure.
#pragma once

namespace dprobe::process {

enum class WaitKind {
  Exited,      ///< exit_code = exit status
  Killed,      ///< signal = terminating signal
  SignalStop,  ///< signal-delivery-stop of `signal`
  EventStop,   ///< PTRACE_EVENT_STOP: interrupt, group-stop (signal = stop signal), new thread
  PtraceEvent, ///< PTRACE_EVENT_CLONE/FORK/VFORK/EXEC/...: `event`
  SyscallStop, ///< SIGTRAP|0x80 (only with PTRACE_SYSCALL, which we never use)
};

struct DecodedStatus {
  WaitKind kind = WaitKind::Exited;
  int signal = 0;
  int exit_code = 0;
  int event = 0;
};

[[nodiscard]] DecodedStatus decode_wait_status(int status);

/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: the signals that start a group-stop.
[[nodiscard]] bool is_stop_signal(int signal);

/// For PTRACE_EVENT_STOP: WSTOPSIG is the stop signal while a group-stop is in effect, and
/// SIGTRAP for a plain interrupt or the first stop of a new thread.
[[nodiscard]] inline bool is_group_stop(const DecodedStatus& d) {
  return d.kind == WaitKind::EventStop && is_stop_signal(d.signal);
}

} // namespace dprobe::process
