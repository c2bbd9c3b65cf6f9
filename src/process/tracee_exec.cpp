// Tracee::seize_before_exec: take a process that is inside execve (held there by a fanotify
// permission event) so that its new image stops before its first instruction.
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "process/proc_files.h"
#include "process/ptrace_calls.h"
#include "process/tracee.h"
#include "process/wait_status.h"

namespace dprobe::process {

// Every thread is seized, not only the one in execve: whichever thread execs, the new image
// runs as the leader's pid, and the kernel reports its PTRACE_EVENT_EXEC there only if that
// thread is traced. The other threads die in the exec (their deaths are reaped here); each is
// polled by its own tid, never with waitpid(-1), which would take other tracees' statuses.
Result<std::unique_ptr<Tracee>> Tracee::seize_before_exec(pid_t pid,
                                                          const std::function<void()>& seized) {
  auto waiter = ChildWaiter::create();
  if (!waiter) {
    seized();
    return std::unexpected(waiter.error());
  }
  std::vector<pid_t> tids{pid};
  if (auto tasks = list_tasks(pid)) {
    for (pid_t tid : *tasks) {
      if (tid != pid) tids.push_back(tid);
    }
  }
  Status taken = ptrace_seize(pid);
  std::vector<pid_t> traced;
  if (taken) {
    traced.push_back(pid);
    for (size_t i = 1; i < tids.size(); ++i) {
      // A thread that ended meanwhile is not an error; one we cannot take is (below).
      if (ptrace_seize(tids[i])) traced.push_back(tids[i]);
    }
  }
  // Whatever happened, the exec must go on: the process is waiting for our answer.
  seized();
  auto let_go = [&traced] {
    for (pid_t tid : traced) (void)ptrace_detach(tid, 0);
  };
  if (!taken) return std::unexpected(taken.error());

  using Clock = std::chrono::steady_clock;
  // An exec that fails after its open (a bad ELF) never stops: give up then.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool any = false;
    for (size_t i = 0; i < traced.size(); ++i) {
      const pid_t tid = traced[i];
      int status = 0;
      const pid_t got = ::waitpid(tid, &status, __WALL | WNOHANG);
      if (got < 0 && errno == EINTR) {
        any = true;
        continue;
      }
      if (got < 0) {
        // Gone without a status for us (a thread the exec released): only the leader's id matters.
        if (tid == pid) {
          let_go();
          return fail_errno("waitpid({})", pid);
        }
        traced.erase(traced.begin() + static_cast<long>(i--));
        continue;
      }
      if (got == 0) continue;
      any = true;
      const DecodedStatus d = decode_wait_status(status);
      Status st;
      switch (d.kind) {
      case WaitKind::Exited:
      case WaitKind::Killed:
        traced.erase(traced.begin() + static_cast<long>(i--));
        if (tid == pid) {
          let_go();
          return fail("process {} has exited", pid);
        }
        continue;
      case WaitKind::PtraceEvent:
        if (d.event == PTRACE_EVENT_EXEC && tid == pid) {
          // The other threads are dead by now; reap what they left.
          for (pid_t other : traced) {
            if (other != pid) (void)::waitpid(other, nullptr, __WALL | WNOHANG);
          }
          auto tracee = held_at_exec(pid, std::move(*waiter));
          if (!tracee) (void)ptrace_detach(pid, 0);
          return tracee;
        }
        st = ptrace_cont(tid, 0);
        break;
      case WaitKind::SignalStop:
        st = ptrace_cont(tid, d.signal);
        break;
      case WaitKind::EventStop:
      case WaitKind::SyscallStop:
        st = ptrace_cont(tid, 0);
        break;
      }
      if (!st && tid == pid) {
        let_go();
        return std::unexpected(st.error());
      }
    }
    if (any) continue;
    if (Clock::now() > deadline) {
      let_go();
      return fail("process {} did not finish its exec", pid);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

} // namespace dprobe::process
