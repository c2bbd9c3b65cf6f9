// Tracee::launch: start a program under ptrace, stopped at the first instruction of its image.
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "process/tracee.h"
#include "process/wait_status.h"

namespace dprobe::process {
namespace {

// PATH lookup as execvp does it, but before fork, so that "no such file" needs no child.
Result<std::string> find_program(const std::string& name) {
  if (name.empty()) return fail("cannot execute an empty command name");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) return fail_errno("cannot execute {}", name);
    return name;
  }
  const char* env = std::getenv("PATH");
  std::string_view path = env != nullptr && *env != '\0' ? env : "/usr/local/bin:/usr/bin:/bin";
  int error = ENOENT;
  while (true) {
    size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, name);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      error = EACCES;
    }
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return fail_code(error, "cannot execute {}", name);
}

void kill_and_reap(pid_t child) {
  ::kill(child, SIGKILL);
  while (::waitpid(child, nullptr, __WALL) < 0 && errno == EINTR) {
  }
}

} // namespace

Result<std::unique_ptr<Tracee>> Tracee::launch(std::span<const std::string> argv) {
  return launch(argv, LaunchOptions{});
}

Result<std::unique_ptr<Tracee>> Tracee::launch(std::span<const std::string> argv,
                                               const LaunchOptions& options) {
  if (argv.empty()) return fail("no command to launch");
  auto program = find_program(argv[0]);
  if (!program) return std::unexpected(program.error());
  auto waiter = ChildWaiter::create();
  if (!waiter) return std::unexpected(waiter.error());

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) return fail_errno("pipe2");

  const pid_t child = ::fork();
  if (child < 0) {
    int saved = errno;
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    return fail_code(saved, "fork");
  }
  if (child == 0) {
    ::close(error_pipe[0]);
    if (options.stdin_fd >= 0) ::dup2(options.stdin_fd, STDIN_FILENO);
    if (options.stdout_fd >= 0) ::dup2(options.stdout_fd, STDOUT_FILENO);
    if (options.stderr_fd >= 0) ::dup2(options.stderr_fd, STDERR_FILENO);
    // Stopped here, the parent seizes us; exec then happens under ptrace.
    ::kill(::getpid(), SIGSTOP);
    ::execv(program->c_str(), args.data());
    int err = errno;
    (void)!::write(error_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(error_pipe[1]);
  UniqueFd exec_error(error_pipe[0]);

  int status = 0;
  while (::waitpid(child, &status, WUNTRACED) < 0) {
    if (errno != EINTR) {
      auto err = fail_errno("waitpid({})", child);
      kill_and_reap(child);
      return err;
    }
  }
  if (!WIFSTOPPED(status)) return fail("{}: child {} ended before exec", argv[0], child);
  if (auto st = ptrace_seize(child); !st) {
    kill_and_reap(child);
    return std::unexpected(st.error());
  }
  ::kill(child, SIGCONT);

  for (;;) {
    if (::waitpid(child, &status, __WALL) < 0) {
      if (errno == EINTR) continue;
      auto err = fail_errno("waitpid({})", child);
      kill_and_reap(child);
      return err;
    }
    DecodedStatus d = decode_wait_status(status);
    Status st;
    switch (d.kind) {
    case WaitKind::Exited:
    case WaitKind::Killed: {
      int err = 0;
      if (::read(exec_error.get(), &err, sizeof err) == static_cast<ssize_t>(sizeof err)) {
        return fail_code(err, "cannot execute {}", argv[0]);
      }
      return fail("{} ended before exec ({} {})", argv[0],
                  d.kind == WaitKind::Exited ? "exit status" : "signal",
                  d.kind == WaitKind::Exited ? d.exit_code : d.signal);
    }
    case WaitKind::PtraceEvent:
      if (d.event == PTRACE_EVENT_EXEC) {
        auto tracee = held_at_exec(child, std::move(*waiter));
        if (!tracee) kill_and_reap(child);
        return tracee;
      }
      st = ptrace_cont(child, 0);
      break;
    case WaitKind::SignalStop:
      // The SIGCONT that woke it is spent; anything else is delivered as usual.
      st = ptrace_cont(child, d.signal == SIGCONT ? 0 : d.signal);
      break;
    case WaitKind::EventStop:
    case WaitKind::SyscallStop:
      st = ptrace_cont(child, 0);
      break;
    }
    if (!st) {
      kill_and_reap(child);
      return std::unexpected(st.error());
    }
  }
}

Result<std::unique_ptr<Tracee>> Tracee::held_at_exec(pid_t pid, ChildWaiter waiter) {
  auto tracee = std::unique_ptr<Tracee>(new Tracee(pid, std::move(waiter)));
  // Handed over as if next_event() had returned the Exec event: the caller resumes it.
  ThreadInfo& t = tracee->threads_.add(pid, ThreadState::Held);
  t.stop = StopKind::SyscallEvent;
  if (auto opened = tracee->open_memory(); !opened) {
    tracee->detached_ = true;
    return std::unexpected(opened.error());
  }
  return tracee;
}

} // namespace dprobe::process
