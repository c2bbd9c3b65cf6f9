// Tracee::attach to running processes: threads, errors, detach, exits while attached.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "process/proc_files.h"
#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::TargetProcess;

std::vector<pid_t> tasks_of(pid_t pid) {
  auto tasks = list_tasks(pid);
  return tasks ? *tasks : std::vector<pid_t>{};
}

std::unique_ptr<Tracee> attach_or_die(pid_t pid) {
  auto tracee = Tracee::attach(pid);
  EXPECT_TRUE(tracee) << tracee.error().text();
  return tracee ? std::move(*tracee) : nullptr;
}

TEST(Attach, SeizesEveryThreadAndTracksNewOnes) {
  auto target = TargetProcess::spawn({THREADS_TARGET, "serve", "4"});
  ASSERT_TRUE(target->io().read_line(1000).has_value());
  const std::vector<pid_t> before = tasks_of(target->pid());
  ASSERT_EQ(before.size(), 5u);

  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  EXPECT_EQ(tracee->threads(), before);
  EXPECT_TRUE(tracee->world_stopped());
  for (pid_t tid : before) {
    EXPECT_EQ(thread_state(target->pid(), tid).value_or('?'), 't') << tid;
  }
  ASSERT_TRUE(tracee->resume_all());

  EventPump pump(*tracee);
  target->io().send("spawn");
  EXPECT_EQ(target->io().read_line(1000, pump.as_function()), "spawned");
  const std::vector<pid_t> after = tasks_of(target->pid());
  ASSERT_EQ(after.size(), 6u);
  EXPECT_EQ(tracee->threads(), after);

  // The new thread is stopped and resumed with the others.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(tracee->stop_all());
    for (pid_t tid : after)
      EXPECT_TRUE(tracee->get_registers(tid)) << tid;
    ASSERT_TRUE(tracee->resume_all());
  }
  ASSERT_TRUE(tracee->detach());
  tracee.reset();
  target->io().send("exit");
  EXPECT_EQ(target->io().read_line(1000), "done");
  int status = target->wait_status(1000);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(pump.count(EventKind::Signal), 0u);
}

TEST(Attach, NonexistentProcess) {
  auto pid_max = read_text_file("/proc/sys/kernel/pid_max");
  ASSERT_TRUE(pid_max);
  const pid_t pid = static_cast<pid_t>(std::stol(*pid_max) + 1);
  auto tracee = Tracee::attach(pid);
  ASSERT_FALSE(tracee);
  EXPECT_EQ(tracee.error().text(), fmt::format("process {} does not exist", pid));
}

TEST(Attach, ProcessTracedByAnotherTracer) {
  auto victim = TargetProcess::spawn({TICKER_TARGET, "1000", "100", "0"});
  ASSERT_EQ(victim->io().read_line(1000), "ready");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t tracer = ::fork();
  if (tracer == 0) {
    ::prctl(PR_SET_NAME, "faketracer");
    char ok = ::ptrace(PTRACE_SEIZE, victim->pid(), nullptr, nullptr) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    for (;;)
      ::pause();
  }
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_EQ(ok, 'y');

  auto tracee = Tracee::attach(victim->pid());
  ::kill(tracer, SIGKILL);
  ::waitpid(tracer, nullptr, 0);
  ASSERT_FALSE(tracee);
  EXPECT_EQ(tracee.error().text(),
            fmt::format("cannot trace process {}: already traced by process {} (faketracer)",
                        victim->pid(), tracer));
}

TEST(Attach, DetachLeavesTheProgramRunning) {
  auto target = TargetProcess::spawn({TICKER_TARGET, "5", "60", "3"});
  ASSERT_EQ(target->io().read_line(1000), "ready");
  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  ASSERT_TRUE(tracee->resume_all());
  EventPump pump(*tracee);
  EXPECT_EQ(target->io().read_line(1000, pump.as_function()), "tick 0");
  ASSERT_TRUE(tracee->stop_all());
  ASSERT_TRUE(tracee->detach());
  EXPECT_TRUE(tracee->threads().empty());
  auto status_text = read_text_file(fmt::format("/proc/{}/status", target->pid()));
  ASSERT_TRUE(status_text);
  EXPECT_EQ(status_number(*status_text, "TracerPid"), 0);
  tracee.reset();
  EXPECT_EQ(target->io().read_all(1500), "tick 1\ntick 2\ntick 3\ntick 4\n");
  int status = target->wait_status(1000);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
}

TEST(Attach, KilledWhileAttached) {
  auto target = TargetProcess::spawn({THREADS_TARGET, "serve", "3"});
  ASSERT_TRUE(target->io().read_line(1000).has_value());
  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  ASSERT_TRUE(tracee->resume_all());
  ::kill(target->pid(), SIGKILL);
  EventPump pump(*tracee);
  auto killed = pump.wait_for(EventKind::Killed, 1000);
  target->forget(); // reaped by the tracer
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->exit_code, SIGKILL);
  EXPECT_EQ(killed->tid, target->pid());
  EXPECT_EQ(pump.count(EventKind::ThreadExited), 3u);
  EXPECT_TRUE(tracee->exited());
  EXPECT_TRUE(tracee->threads().empty());
  auto next = tracee->next_event(0);
  ASSERT_FALSE(next);
  EXPECT_EQ(next.error().text(), fmt::format("process {} has exited", target->pid()));
}

TEST(Attach, ExitWhileAttachedReportsTheStatus) {
  auto target = TargetProcess::spawn({THREADS_TARGET, "serve", "2"});
  ASSERT_TRUE(target->io().read_line(1000).has_value());
  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  ASSERT_TRUE(tracee->resume_all());
  EventPump pump(*tracee);
  target->io().send("exit");
  EXPECT_EQ(target->io().read_line(1000, pump.as_function()), "done");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  target->forget();
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
}

TEST(Attach, ProcessWithZombieLeader) {
  auto target = TargetProcess::spawn({THREADS_TARGET, "zombie", "3"});
  ASSERT_TRUE(target->io().read_line(1000).has_value());
  for (int i = 0; i < 100 && thread_state(target->pid(), target->pid()) != 'Z'; ++i) {
    ::usleep(2000);
  }
  ASSERT_EQ(thread_state(target->pid(), target->pid()).value_or('?'), 'Z');
  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  std::vector<pid_t> workers = tasks_of(target->pid());
  std::erase(workers, target->pid());
  EXPECT_EQ(tracee->threads(), workers);
  ASSERT_TRUE(tracee->resume_all());
  ASSERT_TRUE(tracee->stop_all());
  auto pid = tracee->remote_syscall(workers.front(), SYS_getpid, {});
  ASSERT_TRUE(pid) << pid.error().text();
  EXPECT_EQ(static_cast<pid_t>(*pid), target->pid());
  std::array<uint8_t, 8> bytes{};
  auto regs = tracee->get_registers(workers.front());
  ASSERT_TRUE(regs);
  EXPECT_TRUE(tracee->read_memory(regs->rip, bytes));
  ASSERT_TRUE(tracee->resume_all());
  ::kill(target->pid(), SIGKILL);
  EventPump pump(*tracee);
  auto killed = pump.wait_for(EventKind::Killed, 1000);
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->exit_code, SIGKILL);
  EXPECT_EQ(killed->tid, target->pid());
  // The zombie leader was never traced: its parent reaps it as usual.
  int status = target->wait_status(1000);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(Attach, LeaderExitingWhileAttachedDoesNotHangStopAll) {
  auto target = TargetProcess::spawn({THREADS_TARGET, "serve", "2"});
  ASSERT_TRUE(target->io().read_line(1000).has_value());
  auto tracee = attach_or_die(target->pid());
  ASSERT_TRUE(tracee);
  ASSERT_TRUE(tracee->resume_all());
  EventPump pump(*tracee);
  target->io().send("leave");
  EXPECT_EQ(target->io().read_line(1000, pump.as_function()), "leaving");
  for (int i = 0; i < 100 && thread_state(target->pid(), target->pid()) != 'Z'; ++i) {
    ::usleep(2000);
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(tracee->stop_all());
    EXPECT_EQ(tracee->threads().size(), 2u);
    ASSERT_TRUE(tracee->resume_all());
  }
  ASSERT_TRUE(tracee->detach());
}

} // namespace
} // namespace dprobe::process
