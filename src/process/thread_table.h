// Per-thread bookkeeping of the tracer: what each traced thread is doing and how to resume it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <vector>

namespace dprobe::process {

enum class ThreadState {
  Running,   ///< resumed (PTRACE_CONT / PTRACE_SINGLESTEP); may stop on its own at any time
  Listening, ///< in group-stop, released with PTRACE_LISTEN so job control keeps working
  Starting,  ///< new thread whose first ptrace-stop has not been collected yet
  Stopping,  ///< PTRACE_INTERRUPT sent, stop not collected yet
  Stopped,   ///< in a ptrace-stop for stop_all(); resume_all() releases it
  Queued,    ///< stopped with an event that next_event() has not returned yet
  Held,      ///< stopped with an event the caller has; only the caller resumes it
  Zombie,    ///< exited thread-group leader whose status comes when the whole process ends
};

/// What kind of ptrace-stop a stopped thread is in: decides how it may be resumed.
enum class StopKind {
  None,           ///< not stopped
  Interrupt,      ///< PTRACE_EVENT_STOP with SIGTRAP (interrupt, first stop of a new thread)
  GroupStop,      ///< PTRACE_EVENT_STOP with a stop signal: resume with PTRACE_LISTEN
  SignalDelivery, ///< signal-delivery-stop of `stop_signal`: resuming with 0 would discard it
  SyscallEvent,   ///< PTRACE_EVENT_CLONE/FORK/EXEC/...: inside a system call that is not done
  Quiet,          ///< a stop that may be resumed with signal 0 and is not inside a system call
};

struct ThreadInfo {
  pid_t tid = 0;
  ThreadState state = ThreadState::Running;
  StopKind stop = StopKind::None;
  int stop_signal = 0;  ///< SignalDelivery: the signal
  int stop_si_code = 0; ///< SignalDelivery: its si_code
  /// A PTRACE_INTERRUPT (or a new thread's first trap) has not produced its PTRACE_EVENT_STOP
  /// yet. Informational: if the thread stopped for something else first, the kernel cleared
  /// the interrupt only if it was sent before that stop began, so a stale PTRACE_EVENT_STOP may
  /// or may not follow. Either way is handled (a stale one is resumed the way the thread was
  /// last resumed).
  bool interrupt_pending = false;
  /// The caller asked for a single step that has not completed: internal resumes must step too.
  bool step_pending = false;
};

/// How the tracer resumes a thread it stopped itself.
enum class ResumeHow { Cont, Step, Listen };

/// Pure decision: resume a thread that `stop_all` (or an internal stop) left stopped.
[[nodiscard]] ResumeHow internal_resume_mode(const ThreadInfo& thread);

/// The signal to pass when resuming internally: never discard a signal in delivery.
[[nodiscard]] int internal_resume_signal(const ThreadInfo& thread);

[[nodiscard]] bool is_stopped(ThreadState state);      ///< Stopped, Queued or Held
[[nodiscard]] bool needs_interrupt(ThreadState state); ///< Running or Listening
[[nodiscard]] bool awaits_stop(ThreadState state);     ///< Starting or Stopping

class ThreadTable {
 public:
  /// Adds `tid` (or returns the existing entry unchanged).
  ThreadInfo& add(pid_t tid, ThreadState state);
  [[nodiscard]] ThreadInfo* find(pid_t tid);
  [[nodiscard]] const ThreadInfo* find(pid_t tid) const;
  void remove(pid_t tid);
  void clear() { threads_.clear(); }
  [[nodiscard]] bool empty() const { return threads_.empty(); }
  [[nodiscard]] size_t size() const { return threads_.size(); }

  /// Thread ids in ascending order, without zombies.
  [[nodiscard]] std::vector<pid_t> live_tids() const;
  [[nodiscard]] std::vector<pid_t> all_tids() const;
  [[nodiscard]] std::vector<pid_t> tids_in(std::initializer_list<ThreadState> states) const;
  [[nodiscard]] bool any_in(std::initializer_list<ThreadState> states) const;

  auto begin() { return threads_.begin(); }
  auto end() { return threads_.end(); }

 private:
  std::map<pid_t, ThreadInfo> threads_;
};

} // namespace dprobe::process
