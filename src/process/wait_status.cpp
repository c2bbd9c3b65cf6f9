#include "process/wait_status.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

namespace dprobe::process {

DecodedStatus decode_wait_status(int status) {
  DecodedStatus d;
  if (WIFEXITED(status)) {
    d.kind = WaitKind::Exited;
    d.exit_code = WEXITSTATUS(status);
    return d;
  }
  if (WIFSIGNALED(status)) {
    d.kind = WaitKind::Killed;
    d.signal = WTERMSIG(status);
    return d;
  }
  d.signal = WSTOPSIG(status);
  d.event = (status >> 16) & 0xff;
  if (d.event == PTRACE_EVENT_STOP) {
    d.kind = WaitKind::EventStop;
  } else if (d.event != 0) {
    d.kind = WaitKind::PtraceEvent;
  } else if (d.signal == (SIGTRAP | 0x80)) {
    d.kind = WaitKind::SyscallStop;
  } else {
    d.kind = WaitKind::SignalStop;
  }
  return d;
}

bool is_stop_signal(int signal) {
  return signal == SIGSTOP || signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU;
}

} // namespace dprobe::process
