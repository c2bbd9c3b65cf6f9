// Stop-the-world, breakpoint traps, job control and exits of launched targets.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "process/proc_files.h"
#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::launch_with_pipes;
using testing::TargetProcess;

TEST(Control, StopAndResumeAHundredTimesKeepsOutput) {
  const std::vector<std::string> argv{THREADS_TARGET, "work", "4", "250"};
  auto reference = TargetProcess::spawn(argv);
  std::string expected = reference->io().read_all(3000);
  ASSERT_EQ(reference->wait_status(1000), 0);
  ASSERT_NE(expected.find("total: "), std::string::npos);

  auto launched = launch_with_pipes(argv);
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  for (int i = 0; i < 400 && tracee.threads().size() < 5; ++i)
    pump.pump(5);
  ASSERT_EQ(tracee.threads().size(), 5u);
  size_t most_threads = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(tracee.stop_all()) << i;
    // Every live thread is stopped: its registers can be read.
    for (pid_t tid : tracee.threads()) {
      auto regs = tracee.get_registers(tid);
      ASSERT_TRUE(regs) << regs.error().text();
    }
    most_threads = std::max(most_threads, tracee.threads().size());
    ASSERT_TRUE(tracee.resume_all());
    pump.pump(0);
    ::usleep(500);
  }
  EXPECT_EQ(most_threads, 5u);
  EXPECT_EQ(launched.io.read_all(3000, pump.as_function()), expected);
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  EXPECT_EQ(pump.count(EventKind::Signal), 0u);
  EXPECT_EQ(pump.count(EventKind::ThreadExited), 4u);
}

TEST(Control, ThreadsComingAndGoingDuringStopTheWorld) {
  const std::vector<std::string> argv{THREADS_TARGET, "churn", "300"};
  auto reference = TargetProcess::spawn(argv);
  std::string expected = reference->io().read_all(3000);
  ASSERT_EQ(reference->wait_status(1000), 0);

  auto launched = launch_with_pipes(argv);
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  int cycles = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  while (!tracee.exited() && std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(tracee.stop_all());
    for (pid_t tid : tracee.threads())
      EXPECT_TRUE(tracee.get_registers(tid)) << tid;
    ASSERT_TRUE(tracee.resume_all());
    pump.pump(0);
    // Leave the threads time to run: the kernel restarts a clone() that sees a pending
    // interrupt, so a stop-the-world storm with no pause starves thread creation.
    ::usleep(1000);
    ++cycles;
  }
  EXPECT_GT(cycles, 10);
  EXPECT_EQ(launched.io.read_all(2000, pump.as_function()), expected);
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  EXPECT_EQ(pump.count(EventKind::ThreadExited), 300u);
  EXPECT_EQ(pump.count(EventKind::Signal), 0u);
}

TEST(Control, BreakpointTrapIsReportedAndTheProgramContinues) {
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "2"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  auto ready = launched.io.read_line(1000, pump.as_function());
  ASSERT_TRUE(ready.has_value());
  const uint64_t probed = testing::parse_probed_address(*ready);
  ASSERT_NE(probed, 0u);

  ASSERT_TRUE(tracee.stop_all());
  std::array<uint8_t, 1> original{};
  ASSERT_TRUE(tracee.read_memory(probed, original));
  const std::array<uint8_t, 1> int3{0xcc};
  ASSERT_TRUE(tracee.write_memory(probed, int3));
  ASSERT_TRUE(tracee.resume_all());

  launched.io.send("call 5");
  // Let the main thread hit the int3 before we stop the world: its trap is then collected by
  // stop_all and queued, not lost.
  ::usleep(100 * 1000);
  ASSERT_TRUE(tracee.stop_all());
  auto event = tracee.next_event(0);
  ASSERT_TRUE(event);
  ASSERT_TRUE(event->has_value());
  const Event& trap = **event;
  EXPECT_EQ(trap.kind, EventKind::Trap);
  EXPECT_EQ(trap.tid, tracee.pid());
  EXPECT_EQ(trap.signal, SIGTRAP);
  EXPECT_EQ(trap.siginfo.si_code, SI_KERNEL);
  auto regs = tracee.get_registers(trap.tid);
  ASSERT_TRUE(regs);
  EXPECT_EQ(regs->rip, probed + 1);

  ASSERT_TRUE(tracee.write_memory(probed, original));
  regs->rip = probed;
  ASSERT_TRUE(tracee.set_registers(trap.tid, *regs));
  // One step over the restored instruction. Our interrupt from stop_all is still pending in
  // this thread: the step must survive it.
  ASSERT_TRUE(tracee.single_step(trap.tid));
  auto stepped = tracee.next_event(1000);
  ASSERT_TRUE(stepped);
  ASSERT_TRUE(stepped->has_value());
  EXPECT_EQ((**stepped).kind, EventKind::Trap);
  EXPECT_EQ((**stepped).tid, trap.tid);
  EXPECT_NE((**stepped).siginfo.si_code, SI_KERNEL);
  auto after_step = tracee.get_registers(trap.tid);
  ASSERT_TRUE(after_step);
  EXPECT_GT(after_step->rip, probed);
  EXPECT_LE(after_step->rip, probed + 15);
  ASSERT_TRUE(tracee.resume(trap.tid));
  ASSERT_TRUE(tracee.resume_all());
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "probed(5)=16");
  launched.io.send("exit");
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "done");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
  EXPECT_EQ(pump.count(EventKind::Trap), 0u);
}

TEST(Control, JobControlStillWorks) {
  auto launched = launch_with_pipes({TICKER_TARGET, "8", "40", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(pid));
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "ready");
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "tick 0");

  ::kill(pid, SIGSTOP);
  auto stop = pump.wait_for(EventKind::Signal, 1000);
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(stop->signal, SIGSTOP);
  // The process is in group-stop now: no more ticks, and stop_all/resume_all keep it there.
  pump.pump(50);
  ASSERT_TRUE(tracee.stop_all());
  ASSERT_TRUE(tracee.resume_all());
  EXPECT_EQ(launched.io.read_line(200, pump.as_function()), std::nullopt);

  ::kill(pid, SIGCONT);
  auto cont = pump.wait_for(EventKind::Signal, 1000);
  ASSERT_TRUE(cont.has_value());
  std::string rest = launched.io.read_all(1500, pump.as_function());
  EXPECT_EQ(rest.find("EINTR"), std::string::npos) << rest;
  EXPECT_NE(rest.find("tick 7\n"), std::string::npos) << rest;
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  EXPECT_EQ(pump.count(EventKind::Signal), 2u);
  EXPECT_EQ(pump.events()[1].signal, SIGCONT);
}

TEST(Control, SignalsReachTheProgram) {
  // SIGTERM while traced: reported, delivered by the caller, and the program dies of it.
  auto launched = launch_with_pipes({TICKER_TARGET, "50", "20", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "ready");
  ::kill(tracee.pid(), SIGTERM);
  auto killed = pump.wait_for(EventKind::Killed, 1000);
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->exit_code, SIGTERM);
  ASSERT_EQ(pump.count(EventKind::Signal), 1u);
  EXPECT_EQ(pump.events()[0].signal, SIGTERM);
  EXPECT_EQ(pump.events()[0].siginfo.si_code, SI_USER);
}

TEST(Control, ForkEventHandsOverAStoppedChild) {
  auto launched = launch_with_pipes({FORKER_TARGET});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  auto ready = launched.io.read_line(1000, pump.as_function());
  ASSERT_TRUE(ready.has_value());
  const uint64_t probed = testing::parse_probed_address(*ready);
  launched.io.send("go");

  std::optional<Event> fork;
  for (int i = 0; i < 100 && !fork; ++i) {
    auto e = tracee.next_event(20);
    ASSERT_TRUE(e);
    if (e->has_value() && (**e).kind == EventKind::Fork) fork = **e;
  }
  ASSERT_TRUE(fork.has_value());
  EXPECT_EQ(fork->tid, tracee.pid());
  ASSERT_GT(fork->child, 0);
  EXPECT_EQ(tracee.children(), std::vector<pid_t>{fork->child});
  auto state = thread_state(fork->child, fork->child);
  EXPECT_EQ(state.value_or('?'), 't');

  // The child gets its own copy of the code: patch probed() there only.
  const std::array<uint8_t, 6> return_1234{0xb8, 0xd2, 0x04, 0x00, 0x00, 0xc3};
  ASSERT_TRUE(tracee.write_memory_of(fork->child, probed, return_1234));
  ASSERT_TRUE(tracee.detach_child(fork->child));
  EXPECT_TRUE(tracee.children().empty());
  ASSERT_TRUE(tracee.resume(fork->tid));
  EXPECT_EQ(launched.io.read_all(1500, pump.as_function()),
            "child probed(2)=1234\nparent: child exit 5, parent probed(2)=7\n");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
}

} // namespace
} // namespace dprobe::process

namespace dprobe::process {
namespace {

TEST(Control, ExecFromANonLeaderThread) {
  auto launched = launch_with_pipes({THREADS_TARGET, "exec", "3", TICKER_TARGET, "2", "10", "5"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  ASSERT_TRUE(tracee.resume(pid));
  std::optional<Event> exec;
  std::vector<Event> seen;
  for (int i = 0; i < 100 && !exec; ++i) {
    auto e = tracee.next_event(20);
    ASSERT_TRUE(e) << e.error().text();
    if (!e->has_value()) continue;
    seen.push_back(**e);
    if ((**e).kind == EventKind::Exec) exec = **e;
  }
  ASSERT_TRUE(exec.has_value());
  EXPECT_EQ(exec->tid, pid);
  EXPECT_EQ(tracee.threads(), std::vector<pid_t>{pid});
  // The new image is readable through the same Tracee.
  auto regs = tracee.get_registers(pid);
  ASSERT_TRUE(regs);
  std::array<uint8_t, 4> code{};
  EXPECT_TRUE(tracee.read_memory(regs->rip, code));
  ASSERT_TRUE(tracee.resume(pid));
  EventPump pump(tracee);
  EXPECT_EQ(launched.io.read_all(1500, pump.as_function()), "ready\ntick 0\ntick 1\n");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 5);
  for (const Event& e : seen) {
    EXPECT_TRUE(e.kind == EventKind::ThreadExited || e.kind == EventKind::Exec) << int(e.kind);
  }
}

void on_usr1(int) {}

TEST(Control, NextEventReturnsEintrWhenASignalArrives) {
  auto launched = launch_with_pipes({TICKER_TARGET, "20", "20", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  struct sigaction action {};
  struct sigaction saved {};
  action.sa_handler = on_usr1; // no SA_RESTART
  ::sigaction(SIGUSR1, &action, &saved);
  const pthread_t self = ::pthread_self();
  std::thread poker([self] {
    ::usleep(50 * 1000);
    ::pthread_kill(self, SIGUSR1);
  });
  // Only EINTR ends this loop: the ticker's output fills the pipe slowly, no events come.
  Result<std::optional<Event>> e = std::optional<Event>();
  for (int i = 0; i < 100; ++i) {
    e = tracee.next_event(-1);
    if (!e) break;
  }
  poker.join();
  ::sigaction(SIGUSR1, &saved, nullptr);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().errno_value, EINTR);
  // A timeout is not an error.
  auto quiet = tracee.next_event(30);
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(quiet->has_value());
}

} // namespace
} // namespace dprobe::process
