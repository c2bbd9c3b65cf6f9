// ptrace control of every thread of one target process.
//
// Threading: a Tracee must be used from the thread that created it (ptrace ties a tracee to
// the tracer thread). Waiting reaps only statuses of this target's threads and of the fork
// children it reported, so other children of dprobe are left to their owners.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "process/child_waiter.h"
#include "process/maps.h"
#include "process/ptrace_calls.h"
#include "process/shared_mapping.h"
#include "process/thread_table.h"

namespace dprobe::process {

enum class EventKind { Trap, Signal, Exec, Fork, VFork, ThreadExited, Exited, Killed };

struct Event {
  EventKind kind = EventKind::Trap;
  pid_t tid = 0;
  int signal = 0;      ///< Trap: SIGTRAP; Signal: the signal about to be delivered
  siginfo_t siginfo{}; ///< for Trap and Signal
  int exit_code = 0;   ///< Exited/ThreadExited: exit status; Killed: terminating signal
  pid_t child = 0;     ///< Fork/VFork: the new child, attached and stopped
};

/// Where a launched program's standard streams go (-1: inherit dprobe's).
struct LaunchOptions {
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

class Tracee {
 public:
  /// fork + exec argv[0] (PATH lookup) under ptrace. Returns with the new image stopped at its
  /// first instruction and its thread *held*, as if next_event() had returned its Exec event:
  /// release it with resume(pid()) (resume_all() leaves it alone). The world does not count as
  /// stopped: threads it creates run. A program that cannot be executed is an error and leaves
  /// no child behind.
  [[nodiscard]] static Result<std::unique_ptr<Tracee>> launch(std::span<const std::string> argv);
  [[nodiscard]] static Result<std::unique_ptr<Tracee>> launch(std::span<const std::string> argv,
                                                              const LaunchOptions& options);

  /// PTRACE_SEIZE every thread of a running process, then stop them all. Errors are one line:
  /// "process 4242 does not exist", "cannot trace process 4242: already traced by process 77
  /// (gdb)", or "cannot trace process 4242: <strerror>".
  [[nodiscard]] static Result<std::unique_ptr<Tracee>> attach(pid_t pid);

  /// PTRACE_SEIZE every thread of a process held inside execve (a fanotify exec permission
  /// event; any of its threads may be the one in execve), call `seized` (which lets the exec go
  /// on), and wait for the new image: returns as launch() does, the image stopped at its first
  /// instruction and its thread held.
  [[nodiscard]] static Result<std::unique_ptr<Tracee>>
  seize_before_exec(pid_t pid, const std::function<void()>& seized);

  Tracee(const Tracee&) = delete;
  Tracee& operator=(const Tracee&) = delete;
  /// If still attached: stop_all + detach (best effort).
  ~Tracee();

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Live traced threads, ascending (a zombie leader is not listed).
  [[nodiscard]] std::vector<pid_t> threads() const;
  /// The process has exited (an Exited/Killed event was produced).
  [[nodiscard]] bool exited() const { return exited_; }
  /// Between stop_all() and resume_all().
  [[nodiscard]] bool world_stopped() const { return world_stopped_; }
  /// Longest sleep between wait polls: short when other threads of dprobe trace processes too
  /// (they may take the SIGCHLD meant for this one).
  void set_wait_slice_ms(int ms) { waiter_.set_max_sleep_ms(ms); }
  /// Fork/vfork children reported by events and not detached yet.
  [[nodiscard]] std::vector<pid_t> children() const;

  /// Stop-the-world: on return every live thread is in a ptrace-stop. Events that arrive while
  /// stopping are queued for next_event(); those threads stay stopped until the caller resumes
  /// them. New threads created meanwhile are stopped too.
  [[nodiscard]] Status stop_all();
  /// Resumes every thread that stop_all() stopped and that has no queued event. Threads the
  /// caller holds (it got an event for them and has not resumed them) are left alone.
  [[nodiscard]] Status resume_all();

  /// The next event from any thread, queued ones first. Thread creation, interrupt stops,
  /// group-stops (released with PTRACE_LISTEN so job control works) are handled internally.
  /// The thread of a returned Trap/Signal/Exec/Fork/VFork event is held until resume() or
  /// single_step(). timeout_ms -1 waits forever; nullopt on timeout. A signal handled by the
  /// calling thread ends the wait with an Error whose errno_value is EINTR.
  [[nodiscard]] Result<std::optional<Event>> next_event(int timeout_ms);

  /// PTRACE_CONT a stopped thread, delivering `signal` (0: none) if it is in a
  /// signal-delivery-stop.
  [[nodiscard]] Status resume(pid_t tid, int signal = 0);
  /// PTRACE_SINGLESTEP a stopped thread; the step completes with a Trap event.
  [[nodiscard]] Status single_step(pid_t tid, int signal = 0);

  [[nodiscard]] Result<Registers> get_registers(pid_t tid) const;
  [[nodiscard]] Status set_registers(pid_t tid, const Registers& regs);

  /// pread of /proc/PID/mem; the error names the address.
  [[nodiscard]] Status read_memory(uint64_t address, std::span<uint8_t> out) const;
  /// pwrite of /proc/PID/mem. Text pages get a private copy-on-write copy: the file on disk and
  /// other processes mapping it are untouched.
  [[nodiscard]] Status write_memory(uint64_t address, std::span<const uint8_t> data);
  /// Same, into another process we trace (e.g. a fork child from an event).
  [[nodiscard]] Status write_memory_of(pid_t other_pid, uint64_t address,
                                       std::span<const uint8_t> data);

  /// Runs one system call in stopped thread `tid` (the caller has stopped the world) and
  /// restores its registers, signal mask, borrowed bytes and pending stop. Works for a thread
  /// stopped inside a blocking call (it is restarted afterwards) and right after exec.
  /// A negative errno result becomes an Error naming the system call.
  /// Not for calls that create tasks or replace the image (clone, fork, execve).
  [[nodiscard]] Result<uint64_t> remote_syscall(pid_t tid, long number,
                                                std::array<uint64_t, 6> args);
  /// Maps `length` bytes of anonymous private memory within ±(2 GiB - 16 MiB) of `near` by a
  /// remote mmap(MAP_FIXED_NOREPLACE) in thread `tid`; returns the address.
  [[nodiscard]] Result<uint64_t> map_memory_near(pid_t tid, uint64_t near, size_t length, int prot);
  /// Creates a memfd in the target ("/memfd:dprobe-region" in its maps), sizes it to `length`
  /// rounded up to pages, maps it MAP_SHARED read/write there and in dprobe, then closes the
  /// target's fd: afterwards the target's fd table is as before and only the mapping remains.
  /// The file is sealed against shrinking, so the target cannot make dprobe's view fault.
  /// Runs remote calls in stopped thread `tid` (stop the world first). On failure everything
  /// done in the target is undone and the error is one line.
  [[nodiscard]] Result<std::unique_ptr<SharedMapping>> map_shared_region(pid_t tid, size_t length);
  /// Maps anonymous private memory with `prot` anywhere in the target and writes `bytes` there
  /// through /proc/PID/mem (works for read+exec pages); returns the address. On failure nothing
  /// stays mapped.
  [[nodiscard]] Result<uint64_t> map_code(pid_t tid, std::span<const uint8_t> bytes, int prot);
  /// Remote munmap in stopped thread `tid`.
  [[nodiscard]] Status unmap(pid_t tid, uint64_t address, size_t length);

  /// Detaches a fork/vfork child reported by an event, letting it run.
  [[nodiscard]] Status detach_child(pid_t child);
  /// Detaches every thread (stopping the world first if needed), leaving the process running
  /// normally. Signals of queued Signal events the caller never received are delivered on
  /// detach; for held threads the caller has decided already. Breakpoint and step traps (SIGTRAP
  /// sent by the kernel) are not re-delivered.
  [[nodiscard]] Status detach();

 private:
  Tracee(pid_t pid, ChildWaiter waiter);
  /// The Tracee of a process in its PTRACE_EVENT_EXEC stop, its thread held as if next_event()
  /// had returned the Exec event (launch, seize_before_exec). Error: /proc/PID/mem unusable.
  static Result<std::unique_ptr<Tracee>> held_at_exec(pid_t pid, ChildWaiter waiter);

  // Status handling (tracee.cpp).
  Result<std::optional<WaitResult>> poll_status();
  Result<std::optional<WaitResult>> wait_status(int timeout_ms, bool interruptible);
  bool belongs_to_target(pid_t pid) const;
  void handle_status(pid_t tid, int status);
  void on_exit(pid_t tid, int status);
  void on_event_stop(ThreadInfo& t, int signal);
  void on_ptrace_event(ThreadInfo& t, int event);
  void on_signal_stop(ThreadInfo& t, int signal);
  void on_exec(ThreadInfo& t);
  void on_fork(ThreadInfo& t, EventKind kind);
  void add_new_thread(pid_t tid);
  void continue_after_internal_stop(ThreadInfo& t);
  Status resume_internal(ThreadInfo& t);
  void drop_stop_events(pid_t tid);
  void reconcile_silent_threads();
  void discard_event(const Event& e);
  Event pop_event();
  Status open_memory();
  [[nodiscard]] Status require_stopped(pid_t tid) const;
  /// Waits for the next status of `tid`, handling every other thread's status on the way.
  Result<int> wait_for_thread(pid_t tid);

  // Remote system calls (remote_syscall.cpp).
  struct SyscallSite {
    uint64_t address = 0;
    bool borrow = false; ///< we write `syscall` there and put the bytes back afterwards
  };
  /// Where thread code can execute a `syscall` instruction near `rip`.
  Result<SyscallSite> syscall_site(uint64_t rip);
  Status leave_syscall_event(ThreadInfo& t);
  Status retrap_group_stop(ThreadInfo& t);
  /// Brings a stopped thread to a PTRACE_EVENT_STOP without running user code.
  Status stop_in_interrupt(ThreadInfo& t, bool signal_stop_will_do);
  std::string maps_path() const;

  pid_t pid_;
  ChildWaiter waiter_;
  ThreadTable threads_;
  std::deque<Event> events_;
  std::map<pid_t, int> early_stops_; ///< statuses of tasks not announced yet by an event
  std::map<pid_t, int> children_;    ///< fork children -> signal to deliver on detach
  std::set<pid_t> released_children_; ///< fork children detached: their statuses are not ours
  std::set<pid_t> ghosts_;           ///< threads that vanished in an exec; statuses ignored
  UniqueFd mem_fd_;
  bool world_stopped_ = false;
  bool exited_ = false;
  bool detached_ = false;
  bool leader_untraced_ = false; ///< attach found the leader a zombie already (cannot be seized)
};

} // namespace dprobe::process
