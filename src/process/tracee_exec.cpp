// Tracee::seize_before_exec: take a process that is inside execve (held there by a fanotify
// permission event) so that its new image stops before its first instruction.
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "process/ptrace_calls.h"
#include "process/tracee.h"
#include "process/wait_status.h"

namespace dprobe::process {

Result<std::unique_ptr<Tracee>> Tracee::seize_before_exec(pid_t pid,
                                                          const std::function<void()>& seized) {
  auto waiter = ChildWaiter::create();
  if (!waiter) {
    seized();
    return std::unexpected(waiter.error());
  }
  Status taken = ptrace_seize(pid);
  // Whatever happened, the exec must go on: the process is waiting for our answer.
  seized();
  if (!taken) return std::unexpected(taken.error());

  using Clock = std::chrono::steady_clock;
  // An exec that fails after its open (a bad ELF) never stops: give up then.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(pid, &status, __WALL | WNOHANG);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail_errno("waitpid({})", pid);
    if (got == 0) {
      if (Clock::now() > deadline) {
        (void)ptrace_detach(pid, 0);
        return fail("process {} did not finish its exec", pid);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    const DecodedStatus d = decode_wait_status(status);
    Status st;
    switch (d.kind) {
    case WaitKind::Exited:
    case WaitKind::Killed:
      return fail("process {} has exited", pid);
    case WaitKind::PtraceEvent:
      if (d.event == PTRACE_EVENT_EXEC) {
        auto tracee = held_at_exec(pid, std::move(*waiter));
        if (!tracee) (void)ptrace_detach(pid, 0);
        return tracee;
      }
      st = ptrace_cont(pid, 0);
      break;
    case WaitKind::SignalStop:
      st = ptrace_cont(pid, d.signal);
      break;
    case WaitKind::EventStop:
    case WaitKind::SyscallStop:
      st = ptrace_cont(pid, 0);
      break;
    }
    if (!st) return std::unexpected(st.error());
  }
}

} // namespace dprobe::process
