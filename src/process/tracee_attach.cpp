// Tracee::attach: seize every thread of a running process and stop them all.
#include <sys/stat.h>
#include <unistd.h>

#include "process/proc_files.h"
#include "process/tracee.h"

namespace dprobe::process {
namespace {

// Why PTRACE_SEIZE of `tid` failed with EPERM, as one line (or nullopt: it is ours already).
Result<bool> explain_eperm(pid_t pid, pid_t tid) {
  auto status = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
  if (!status) return fail_code(EPERM, "cannot trace process {}", pid);
  long tracer = status_number(*status, "TracerPid").value_or(0);
  if (tracer == ::gettid()) return true; // attached automatically as a clone of a seized thread
  if (tracer != 0) {
    return fail("cannot trace process {}: already traced by process {} ({})", pid, tracer,
                read_comm(static_cast<pid_t>(tracer)));
  }
  return fail_code(EPERM, "cannot trace process {}", pid);
}

} // namespace

Result<std::unique_ptr<Tracee>> Tracee::attach(pid_t pid) {
  struct stat st {};
  if (pid <= 0 || ::stat(fmt::format("/proc/{}", pid).c_str(), &st) != 0) {
    return fail("process {} does not exist", pid);
  }
  auto status = read_text_file(fmt::format("/proc/{}/status", pid));
  if (!status) return fail("process {} does not exist", pid);
  long tgid = status_number(*status, "Tgid").value_or(pid);
  if (tgid != pid) return fail("{} is a thread of process {}, not a process", pid, tgid);
  if (pid == ::getpid()) return fail("cannot trace process {}: it is dprobe itself", pid);

  auto waiter = ChildWaiter::create();
  if (!waiter) return std::unexpected(waiter.error());
  // From here on the destructor stops and detaches whatever was seized if attach fails.
  auto tracee = std::unique_ptr<Tracee>(new Tracee(pid, std::move(*waiter)));

  // Threads keep being created while we seize: rescan until a pass finds none, then stop
  // everything and check once more (with all threads stopped nobody can create one).
  auto is_zombie = [pid](pid_t tid) {
    auto state = thread_state(pid, tid);
    return state && (*state == 'Z' || *state == 'X');
  };
  for (int round = 0;; ++round) {
    if (round == 1000) return fail("cannot trace process {}: its threads keep changing", pid);
    bool found_new = false;
    auto tasks = list_tasks(pid);
    if (!tasks) {
      if (tracee->threads_.empty()) return fail("process {} does not exist", pid);
      return std::unexpected(tasks.error());
    }
    for (pid_t tid : *tasks) {
      if (tracee->threads_.find(tid) != nullptr) continue;
      if (tid == pid && tracee->leader_untraced_) continue;
      auto seized = ptrace_seize(tid);
      if (seized) {
        tracee->threads_.add(tid, ThreadState::Running);
        found_new = true;
        continue;
      }
      const int err = seized.error().errno_value;
      if (err == ESRCH) continue; // exited meanwhile
      if (err != EPERM) return fail_code(err, "cannot trace process {}", pid);
      if (is_zombie(tid)) {
        // A zombie cannot be seized; a zombie leader stays while other threads live.
        if (tid == pid) tracee->leader_untraced_ = true;
        continue;
      }
      auto ours = explain_eperm(pid, tid);
      if (!ours) return std::unexpected(ours.error());
      ThreadInfo& t = tracee->threads_.add(tid, ThreadState::Starting);
      t.interrupt_pending = true;
      found_new = true;
    }
    if (tracee->threads_.empty()) {
      if (tracee->leader_untraced_) {
        return fail("cannot trace process {}: it has exited (zombie)", pid);
      }
      return fail("process {} does not exist", pid);
    }
    if (found_new) continue;
    if (auto stopped = tracee->stop_all(); !stopped) return std::unexpected(stopped.error());
    if (tracee->exited_) break;
    auto again = list_tasks(pid);
    if (!again) return std::unexpected(again.error());
    bool complete = true;
    for (pid_t tid : *again) {
      bool known = tracee->threads_.find(tid) != nullptr ||
                   (tid == pid && tracee->leader_untraced_) || tracee->ghosts_.contains(tid);
      if (!known && !is_zombie(tid)) complete = false;
    }
    if (complete) break;
  }
  if (tracee->exited_) return fail("process {} exited while dprobe attached", pid);
  if (auto opened = tracee->open_memory(); !opened) return std::unexpected(opened.error());
  return tracee;
}

} // namespace dprobe::process
