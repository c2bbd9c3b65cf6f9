#include "process/tracee.h"

#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "process/proc_files.h"
#include "process/wait_status.h"

namespace dprobe::process {
namespace {

bool is_stop_event(EventKind kind) {
  return kind == EventKind::Trap || kind == EventKind::Signal || kind == EventKind::Exec ||
         kind == EventKind::Fork || kind == EventKind::VFork;
}

// Consumes the status of one child if it has one (never blocks).
Result<std::optional<WaitResult>> take_status(pid_t pid) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG | __WALL);
    if (r > 0) return WaitResult{r, status};
    if (r == 0) return std::optional<WaitResult>();
    if (errno == EINTR) continue;
    if (errno == ECHILD) return std::optional<WaitResult>();
    return fail_errno("waitpid({})", pid);
  }
}

// Full pread/pwrite at a target address; `what` is "read" or "write".
template <class Fn>
Status transfer(Fn&& io, size_t size, uint64_t address, std::string_view path,
                std::string_view what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = io(done, static_cast<off_t>(address + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return fail_code(n < 0 ? errno : EIO, "{}: {} of {} bytes at {:#x}", path, what, size,
                       address + done);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

} // namespace

Tracee::Tracee(pid_t pid, ChildWaiter waiter) : pid_(pid), waiter_(std::move(waiter)) {}

Tracee::~Tracee() {
  if (!detached_ && !exited_) (void)detach();
}

std::vector<pid_t> Tracee::threads() const {
  return threads_.live_tids();
}

std::vector<pid_t> Tracee::children() const {
  std::vector<pid_t> out;
  for (const auto& [child, signal] : children_)
    out.push_back(child);
  return out;
}

// The path of a /proc file of this process that still works when the leader is a zombie
// (then /proc/PID/mem and /proc/PID/maps are empty): go through a live thread instead.
static std::string proc_path(const ThreadTable& threads, pid_t pid, std::string_view file) {
  const ThreadInfo* leader = threads.find(pid);
  auto live = threads.live_tids();
  if ((leader != nullptr && leader->state != ThreadState::Zombie) || live.empty()) {
    return fmt::format("/proc/{}/{}", pid, file);
  }
  return fmt::format("/proc/{}/task/{}/{}", pid, live.front(), file);
}

Status Tracee::open_memory() {
  std::string path = proc_path(threads_, pid_, "mem");
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail_errno("{}", path);
  mem_fd_.reset(fd);
  return {};
}

std::string Tracee::maps_path() const {
  return proc_path(threads_, pid_, "maps");
}

// ---- waiting -------------------------------------------------------------------------------

bool Tracee::belongs_to_target(pid_t pid) const {
  auto text = read_text_file(fmt::format("/proc/{}/status", pid));
  if (!text) return false;
  const auto tgid = status_number(*text, "Tgid");
  if (tgid == pid_) return true;
  // A fork child detached by detach_child() may be traced by another tracer thread of dprobe,
  // whose statuses (its threads' too: they show our target as PPid) this thread can see and
  // must not take.
  return status_number(*text, "PPid") == pid_ && !(tgid && released_children_.contains(static_cast<pid_t>(*tgid)));
}

Result<std::optional<WaitResult>> Tracee::poll_status() {
  // Peek first (WNOWAIT) so that a status of someone else's child is never reaped here.
  siginfo_t info{};
  for (;;) {
    info = siginfo_t{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) == 0) break;
    if (errno == EINTR) continue;
    if (errno == ECHILD) return std::optional<WaitResult>();
    return fail_errno("waitid");
  }
  const pid_t first = info.si_pid;
  if (first == 0) return std::optional<WaitResult>();
  const bool known = threads_.find(first) != nullptr || children_.contains(first) ||
                     ghosts_.contains(first) || first == pid_;
  if (known || belongs_to_target(first)) {
    auto got = take_status(first);
    if (!got || *got) return got;
  }
  // The first waitable child is not ours: ask for ours one by one.
  std::vector<pid_t> ours = threads_.all_tids();
  for (const auto& [child, signal] : children_)
    ours.push_back(child);
  ours.insert(ours.end(), ghosts_.begin(), ghosts_.end());
  for (pid_t p : ours) {
    auto got = take_status(p);
    if (!got || *got) return got;
  }
  return std::optional<WaitResult>();
}

Result<std::optional<WaitResult>> Tracee::wait_status(int timeout_ms, bool interruptible) {
  return waiter_.wait(timeout_ms, interruptible, [this] { return poll_status(); });
}

Result<int> Tracee::wait_for_thread(pid_t tid) {
  for (;;) {
    auto got = wait_status(ChildWaiter::kMaxSleepMs, false);
    if (!got) return std::unexpected(got.error());
    if (*got) {
      if ((*got)->pid == tid) return (*got)->status;
      handle_status((*got)->pid, (*got)->status);
    }
    if (threads_.find(tid) == nullptr) return fail("thread {} vanished", tid);
  }
}

// ---- status handling -----------------------------------------------------------------------

void Tracee::handle_status(pid_t tid, int status) {
  DecodedStatus d = decode_wait_status(status);
  if (d.kind == WaitKind::Exited || d.kind == WaitKind::Killed) {
    on_exit(tid, status);
    return;
  }
  ThreadInfo* t = threads_.find(tid);
  if (t == nullptr) {
    // The first stop of a new thread or fork child can come before the event that announces
    // it: keep it for add_new_thread/on_fork.
    if (!children_.contains(tid) && !ghosts_.contains(tid)) early_stops_[tid] = status;
    return;
  }
  switch (d.kind) {
  case WaitKind::EventStop:
    on_event_stop(*t, d.signal);
    break;
  case WaitKind::PtraceEvent:
    on_ptrace_event(*t, d.event);
    break;
  case WaitKind::SyscallStop:
    t->stop = StopKind::SyscallEvent;
    continue_after_internal_stop(*t);
    break;
  case WaitKind::SignalStop:
    on_signal_stop(*t, d.signal);
    break;
  case WaitKind::Exited:
  case WaitKind::Killed:
    break;
  }
}

void Tracee::on_exit(pid_t tid, int status) {
  DecodedStatus d = decode_wait_status(status);
  const int code = d.kind == WaitKind::Exited ? d.exit_code : d.signal;
  if (children_.erase(tid) > 0 || ghosts_.erase(tid) > 0) return;
  early_stops_.erase(tid);
  if (threads_.find(tid) == nullptr) return;
  drop_stop_events(tid);
  threads_.remove(tid);

  // The leader's status comes last, once every other thread is gone. If attach found the
  // leader a zombie already, it is not ours to reap: the last thread speaks for the process.
  const bool process_end = tid == pid_ || (leader_untraced_ && threads_.empty());
  if (!process_end) {
    Event e;
    e.kind = EventKind::ThreadExited;
    e.tid = tid;
    e.exit_code = code;
    events_.push_back(e);
    return;
  }
  for (pid_t other : threads_.all_tids())
    drop_stop_events(other);
  threads_.clear();
  Event e;
  e.kind = d.kind == WaitKind::Exited ? EventKind::Exited : EventKind::Killed;
  e.tid = pid_;
  e.exit_code = code;
  events_.push_back(e);
  exited_ = true;
  world_stopped_ = false;
  mem_fd_.reset();
}

void Tracee::on_event_stop(ThreadInfo& t, int signal) {
  t.interrupt_pending = false;
  t.stop = is_stop_signal(signal) ? StopKind::GroupStop : StopKind::Interrupt;
  t.stop_signal = 0;
  const bool keep =
      t.state == ThreadState::Stopping || (t.state == ThreadState::Starting && world_stopped_);
  if (keep) {
    t.state = ThreadState::Stopped;
  } else {
    // A stale interrupt (we interrupted it while it was stopped for an event), a group-stop,
    // or a new thread while the world runs.
    (void)resume_internal(t);
  }
}

void Tracee::on_ptrace_event(ThreadInfo& t, int event) {
  t.stop = StopKind::SyscallEvent;
  t.stop_signal = 0;
  switch (event) {
  case PTRACE_EVENT_CLONE: {
    auto message = ptrace_event_message(t.tid);
    if (message) add_new_thread(static_cast<pid_t>(*message));
    continue_after_internal_stop(t);
    return;
  }
  case PTRACE_EVENT_FORK:
    on_fork(t, EventKind::Fork);
    return;
  case PTRACE_EVENT_VFORK:
    on_fork(t, EventKind::VFork);
    return;
  case PTRACE_EVENT_EXEC:
    on_exec(t);
    return;
  default:
    continue_after_internal_stop(t);
    return;
  }
}

void Tracee::on_signal_stop(ThreadInfo& t, int signal) {
  auto info = ptrace_get_siginfo(t.tid);
  if (!info) {
    // Killed while stopped: its exit status follows.
    t.state = ThreadState::Running;
    t.stop = StopKind::None;
    return;
  }
  t.stop = StopKind::SignalDelivery;
  t.stop_signal = signal;
  t.stop_si_code = info->si_code;
  t.step_pending = false;
  t.state = ThreadState::Queued;
  Event e;
  e.kind = signal == SIGTRAP ? EventKind::Trap : EventKind::Signal;
  e.tid = t.tid;
  e.signal = signal;
  e.siginfo = *info;
  events_.push_back(e);
}

void Tracee::on_fork(ThreadInfo& t, EventKind kind) {
  auto message = ptrace_event_message(t.tid);
  if (!message) {
    continue_after_internal_stop(t);
    return;
  }
  const pid_t child = static_cast<pid_t>(*message);
  // The child is attached automatically; collect its first stop so it is stopped for sure.
  int status = 0;
  bool have = false;
  if (auto it = early_stops_.find(child); it != early_stops_.end()) {
    status = it->second;
    early_stops_.erase(it);
    have = true;
  }
  while (!have) {
    pid_t r = ::waitpid(child, &status, __WALL);
    if (r == child) have = true;
    if (r < 0 && errno != EINTR) break;
  }
  DecodedStatus d = decode_wait_status(status);
  if (have && d.kind != WaitKind::Exited && d.kind != WaitKind::Killed) {
    children_[child] = d.kind == WaitKind::SignalStop ? d.signal : 0;
  }
  t.state = ThreadState::Queued;
  Event e;
  e.kind = kind;
  e.tid = t.tid;
  e.child = child;
  events_.push_back(e);
}

void Tracee::on_exec(ThreadInfo& t) {
  // The execing thread now has the leader's tid; every other thread is gone (their exit
  // statuses may still trickle in and are ignored).
  pid_t former = pid_;
  if (auto message = ptrace_event_message(t.tid)) former = static_cast<pid_t>(*message);
  bool interrupt = t.interrupt_pending;
  if (const ThreadInfo* f = threads_.find(former); f != nullptr && former != pid_) {
    interrupt = f->interrupt_pending;
  }
  for (pid_t tid : threads_.all_tids()) {
    if (tid != pid_) ghosts_.insert(tid);
  }
  std::deque<Event> kept;
  for (const Event& e : events_) {
    if (is_stop_event(e.kind)) {
      discard_event(e);
    } else {
      kept.push_back(e);
    }
  }
  events_ = std::move(kept);
  threads_.clear();
  ThreadInfo& leader = threads_.add(pid_, ThreadState::Queued);
  leader.stop = StopKind::SyscallEvent;
  leader.interrupt_pending = interrupt;
  (void)open_memory();
  Event e;
  e.kind = EventKind::Exec;
  e.tid = pid_;
  events_.push_back(e);
}

void Tracee::add_new_thread(pid_t tid) {
  if (threads_.find(tid) != nullptr) return; // seized by attach() already
  ThreadInfo& t = threads_.add(tid, ThreadState::Starting);
  t.interrupt_pending = true; // a new thread reports a PTRACE_EVENT_STOP first
  if (auto it = early_stops_.find(tid); it != early_stops_.end()) {
    int status = it->second;
    early_stops_.erase(it);
    handle_status(tid, status);
  }
}

void Tracee::continue_after_internal_stop(ThreadInfo& t) {
  if (t.state == ThreadState::Stopping) {
    t.state = ThreadState::Stopped; // our interrupt is still pending and reports later
  } else {
    (void)resume_internal(t);
  }
}

Status Tracee::resume_internal(ThreadInfo& t) {
  Status st;
  switch (internal_resume_mode(t)) {
  case ResumeHow::Listen:
    st = ptrace_listen(t.tid);
    if (st) {
      t.state = ThreadState::Listening;
      break;
    }
    st = ptrace_cont(t.tid, 0);
    t.state = ThreadState::Running;
    break;
  case ResumeHow::Step:
    st = ptrace_single_step(t.tid, internal_resume_signal(t));
    t.state = ThreadState::Running;
    break;
  case ResumeHow::Cont:
    st = ptrace_cont(t.tid, internal_resume_signal(t));
    t.state = ThreadState::Running;
    break;
  }
  t.stop = StopKind::None;
  // ESRCH: killed while stopped; its exit status follows.
  if (!st && st.error().errno_value == ESRCH) return {};
  return st;
}

void Tracee::discard_event(const Event& e) {
  // A fork child whose event can no longer be handed out must not stay stopped forever.
  if (e.kind == EventKind::Fork || e.kind == EventKind::VFork) {
    if (auto it = children_.find(e.child); it != children_.end()) {
      (void)ptrace_detach(e.child, it->second);
      children_.erase(it);
    }
  }
}

void Tracee::drop_stop_events(pid_t tid) {
  std::deque<Event> kept;
  for (const Event& e : events_) {
    if (e.tid == tid && is_stop_event(e.kind)) {
      discard_event(e);
    } else {
      kept.push_back(e);
    }
  }
  events_ = std::move(kept);
}

void Tracee::reconcile_silent_threads() {
  for (pid_t tid : threads_.tids_in({ThreadState::Stopping, ThreadState::Starting})) {
    auto state = thread_state(pid_, tid);
    if (!state) {
      // Gone without a status we could collect: forget it.
      threads_.remove(tid);
      Event e;
      e.kind = EventKind::ThreadExited;
      e.tid = tid;
      events_.push_back(e);
    } else if (tid == pid_ && (*state == 'Z' || *state == 'X')) {
      // An exited leader does not stop; its status comes when the whole process is gone.
      ThreadInfo* leader = threads_.find(tid);
      leader->state = ThreadState::Zombie;
      leader->stop = StopKind::None;
    }
  }
}

Event Tracee::pop_event() {
  Event e = events_.front();
  events_.pop_front();
  if (is_stop_event(e.kind)) {
    if (ThreadInfo* t = threads_.find(e.tid); t != nullptr && t->state == ThreadState::Queued) {
      t->state = ThreadState::Held;
    }
  }
  return e;
}

// ---- public control ------------------------------------------------------------------------

Status Tracee::stop_all() {
  if (exited_ || detached_) return {};
  world_stopped_ = true;
  for (auto& [tid, t] : threads_) {
    if (!needs_interrupt(t.state)) continue;
    // On ESRCH the thread is exiting: its exit status ends the wait below.
    if (ptrace_interrupt(tid)) t.interrupt_pending = true;
    t.state = ThreadState::Stopping;
  }
  int slice_ms = 1;
  while (threads_.any_in({ThreadState::Stopping, ThreadState::Starting})) {
    auto got = wait_status(slice_ms, false);
    if (!got) return std::unexpected(got.error());
    if (*got) {
      handle_status((*got)->pid, (*got)->status);
      continue;
    }
    reconcile_silent_threads();
    slice_ms = std::min(slice_ms * 2, ChildWaiter::kMaxSleepMs);
  }
  return {};
}

Status Tracee::resume_all() {
  if (exited_ || detached_) return {};
  world_stopped_ = false;
  Status result;
  for (auto& [tid, t] : threads_) {
    if (t.state != ThreadState::Stopped) continue;
    if (auto st = resume_internal(t); !st && result) result = st;
  }
  return result;
}

Result<std::optional<Event>> Tracee::next_event(int timeout_ms) {
  if (!events_.empty()) return pop_event();
  if (exited_) return fail("process {} has exited", pid_);
  if (detached_) return fail("process {} is detached", pid_);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  for (;;) {
    int left = -1;
    if (timeout_ms >= 0) {
      left = static_cast<int>(std::max<long>(
          0, std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    }
    auto got = wait_status(left, true);
    if (!got) return std::unexpected(got.error());
    if (!*got) return std::optional<Event>();
    handle_status((*got)->pid, (*got)->status);
    if (!events_.empty()) return pop_event();
    // Internal stops produce no event: keep going (with timeout 0, until none is pending).
  }
}

Status Tracee::require_stopped(pid_t tid) const {
  const ThreadInfo* t = threads_.find(tid);
  if (t == nullptr) return fail("thread {} is not a traced thread of process {}", tid, pid_);
  if (t->state == ThreadState::Queued) {
    return fail("thread {} has an event that next_event() has not returned yet", tid);
  }
  if (!is_stopped(t->state)) return fail("thread {} is not stopped", tid);
  return {};
}

Status Tracee::resume(pid_t tid, int signal) {
  if (auto st = require_stopped(tid); !st) return st;
  ThreadInfo& t = *threads_.find(tid);
  t.step_pending = false;
  if (t.stop == StopKind::GroupStop && signal == 0) {
    if (auto st = ptrace_listen(tid); !st) return st;
    t.state = ThreadState::Listening;
  } else {
    if (auto st = ptrace_cont(tid, signal); !st) return st;
    t.state = ThreadState::Running;
  }
  t.stop = StopKind::None;
  return {};
}

Status Tracee::single_step(pid_t tid, int signal) {
  if (auto st = require_stopped(tid); !st) return st;
  ThreadInfo& t = *threads_.find(tid);
  if (auto st = ptrace_single_step(tid, signal); !st) return st;
  t.step_pending = true;
  t.state = ThreadState::Running;
  t.stop = StopKind::None;
  return {};
}

Result<Registers> Tracee::get_registers(pid_t tid) const {
  const ThreadInfo* t = threads_.find(tid);
  if (t == nullptr) return fail("thread {} is not a traced thread of process {}", tid, pid_);
  if (!is_stopped(t->state)) return fail("thread {} is not stopped", tid);
  return ptrace_get_registers(tid);
}

Status Tracee::set_registers(pid_t tid, const Registers& regs) {
  const ThreadInfo* t = threads_.find(tid);
  if (t == nullptr) return fail("thread {} is not a traced thread of process {}", tid, pid_);
  if (!is_stopped(t->state)) return fail("thread {} is not stopped", tid);
  return ptrace_set_registers(tid, regs);
}

Status Tracee::read_memory(uint64_t address, std::span<uint8_t> out) const {
  std::string path = fmt::format("/proc/{}/mem", pid_);
  if (!mem_fd_.valid()) return fail("{}: process has exited", path);
  return transfer(
      [&](size_t done, off_t at) {
        return ::pread(mem_fd_.get(), out.data() + done, out.size() - done, at);
      },
      out.size(), address, path, "read");
}

Status Tracee::write_memory(uint64_t address, std::span<const uint8_t> data) {
  std::string path = fmt::format("/proc/{}/mem", pid_);
  if (!mem_fd_.valid()) return fail("{}: process has exited", path);
  return transfer(
      [&](size_t done, off_t at) {
        return ::pwrite(mem_fd_.get(), data.data() + done, data.size() - done, at);
      },
      data.size(), address, path, "write");
}

Status Tracee::write_memory_of(pid_t other_pid, uint64_t address, std::span<const uint8_t> data) {
  std::string path = fmt::format("/proc/{}/mem", other_pid);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return fail_errno("{}", path);
  return transfer(
      [&](size_t done, off_t at) {
        return ::pwrite(fd.get(), data.data() + done, data.size() - done, at);
      },
      data.size(), address, path, "write");
}

Status Tracee::detach_child(pid_t child) {
  auto it = children_.find(child);
  if (it == children_.end()) return fail("process {} is not a child held by dprobe", child);
  int signal = it->second;
  children_.erase(it);
  released_children_.insert(child);
  auto st = ptrace_detach(child, signal);
  if (!st && st.error().errno_value != ESRCH) return st;
  return {};
}

Status Tracee::detach() {
  if (detached_ || exited_) return {};
  Status result = stop_all();
  if (!exited_) {
    for (auto& [tid, t] : threads_) {
      if (t.state == ThreadState::Zombie) continue;
      int signal = 0;
      // A signal the caller never saw goes on to the program. Kernel SIGTRAPs (int3, single
      // step) belong to the caller's breakpoints and make no sense without them.
      const bool kernel_trap = t.stop_signal == SIGTRAP && t.stop_si_code > 0;
      if (t.state == ThreadState::Queued && t.stop == StopKind::SignalDelivery && !kernel_trap) {
        signal = t.stop_signal;
      }
      auto st = ptrace_detach(tid, signal);
      if (!st && st.error().errno_value != ESRCH && result) result = st;
    }
  }
  for (const auto& [child, signal] : children_)
    (void)ptrace_detach(child, signal);
  children_.clear();
  threads_.clear();
  events_.clear();
  world_stopped_ = false;
  detached_ = true;
  return result;
}

} // namespace dprobe::process
