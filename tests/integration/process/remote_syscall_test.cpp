// remote_syscall and map_memory_near in real targets.
#include <sys/mman.h>
#include <sys/syscall.h>

#include <gtest/gtest.h>

#include "process/maps.h"
#include "process/proc_files.h"
#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::launch_with_pipes;
using testing::TargetProcess;

TEST(RemoteSyscall, InAThreadBlockedInNanosleep) {
  auto target = TargetProcess::spawn({TICKER_TARGET, "4", "150", "6"});
  ASSERT_EQ(target->io().read_line(1000), "ready");
  // Attach once the main thread sleeps (it printed "ready" just before).
  const std::string syscall_file = fmt::format("/proc/{}/syscall", target->pid());
  for (int i = 0; i < 200; ++i) {
    auto text = read_text_file(syscall_file);
    if (text && text->starts_with(fmt::format("{} ", SYS_clock_nanosleep))) break;
    ::usleep(1000);
  }
  auto attached = Tracee::attach(target->pid());
  ASSERT_TRUE(attached) << attached.error().text();
  Tracee& tracee = **attached;
  const pid_t pid = target->pid();

  auto before = tracee.get_registers(pid);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->orig_rax, static_cast<uint64_t>(SYS_clock_nanosleep)); // blocked in it
  auto got_pid = tracee.remote_syscall(pid, SYS_getpid, {});
  ASSERT_TRUE(got_pid) << got_pid.error().text();
  EXPECT_EQ(*got_pid, static_cast<uint64_t>(pid));
  auto got_tid = tracee.remote_syscall(pid, SYS_gettid, {});
  ASSERT_TRUE(got_tid);
  EXPECT_EQ(*got_tid, static_cast<uint64_t>(pid));
  auto after = tracee.get_registers(pid);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->rip, before->rip);
  EXPECT_EQ(after->rsp, before->rsp);
  EXPECT_EQ(after->rax, before->rax);
  EXPECT_EQ(after->orig_rax, before->orig_rax);
  EXPECT_EQ(after->rcx, before->rcx);

  ASSERT_TRUE(tracee.resume_all());
  EventPump pump(tracee);
  EXPECT_EQ(target->io().read_all(1500, pump.as_function()), "tick 0\ntick 1\ntick 2\ntick 3\n");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  target->forget();
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 6);
}

TEST(RemoteSyscall, ErrorsNameTheSystemCall) {
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  auto r = tracee.remote_syscall(tracee.pid(), SYS_munmap, {1, 4096, 0, 0, 0, 0});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().text(),
            fmt::format("remote munmap in thread {}: Invalid argument", tracee.pid()));
}

TEST(RemoteSyscall, MapMemoryNearRightAfterExec) {
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "1"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  auto regs = tracee.get_registers(pid);
  ASSERT_TRUE(regs);

  auto got_pid = tracee.remote_syscall(pid, SYS_getpid, {});
  ASSERT_TRUE(got_pid) << got_pid.error().text();
  EXPECT_EQ(*got_pid, static_cast<uint64_t>(pid));

  auto address = tracee.map_memory_near(pid, regs->rip, 8192, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(address) << address.error().text();
  const int64_t distance = static_cast<int64_t>(*address - regs->rip);
  EXPECT_LT(std::abs(distance) + 8192, int64_t{1} << 31);
  auto maps = read_maps(pid);
  ASSERT_TRUE(maps);
  bool found = false;
  for (const auto& m : *maps) {
    if (m.start == *address) {
      found = true;
      EXPECT_EQ(m.end, *address + 8192);
      EXPECT_TRUE(m.readable && m.writable && !m.executable && m.is_private);
      EXPECT_EQ(m.path, "");
    }
  }
  EXPECT_TRUE(found);
  const std::array<uint8_t, 4> data{1, 2, 3, 4};
  ASSERT_TRUE(tracee.write_memory(*address + 100, data));
  std::array<uint8_t, 4> back{};
  ASSERT_TRUE(tracee.read_memory(*address + 100, back));
  EXPECT_EQ(back, data);

  // The program starts as if nothing happened.
  auto after = tracee.get_registers(pid);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->rip, regs->rip);
  ASSERT_TRUE(tracee.resume(pid));
  EventPump pump(tracee);
  auto ready = launched.io.read_line(1000, pump.as_function());
  ASSERT_TRUE(ready.has_value());
  launched.io.send("call 5");
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "probed(5)=16");
  launched.io.send("exit");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
}

TEST(RemoteSyscall, KeepsAQueuedSignal) {
  // A thread stopped for a signal nobody has handed out yet: the remote call must not eat it.
  auto launched = launch_with_pipes({TICKER_TARGET, "100", "20", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(pid));
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "ready");
  ::kill(pid, SIGTERM);
  ::usleep(50 * 1000);
  ASSERT_TRUE(tracee.stop_all());
  auto got = tracee.remote_syscall(pid, SYS_getpid, {});
  ASSERT_TRUE(got) << got.error().text();
  auto event = tracee.next_event(0);
  ASSERT_TRUE(event);
  ASSERT_TRUE(event->has_value());
  EXPECT_EQ((**event).kind, EventKind::Signal);
  EXPECT_EQ((**event).signal, SIGTERM);
  EXPECT_EQ((**event).siginfo.si_code, SI_USER);
  ASSERT_TRUE(tracee.resume(pid, SIGTERM));
  ASSERT_TRUE(tracee.resume_all());
  auto killed = pump.wait_for(EventKind::Killed, 1000);
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->exit_code, SIGTERM);
}

} // namespace
} // namespace dprobe::process
