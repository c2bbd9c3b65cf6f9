#include "process/wait_status.h"

#include <signal.h>
#include <sys/ptrace.h>

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

int stopped(int signal, int event = 0) {
  return (event << 16) | (signal << 8) | 0x7f;
}

TEST(WaitStatus, ExitAndKill) {
  DecodedStatus d = decode_wait_status(3 << 8);
  EXPECT_EQ(d.kind, WaitKind::Exited);
  EXPECT_EQ(d.exit_code, 3);
  d = decode_wait_status(SIGKILL);
  EXPECT_EQ(d.kind, WaitKind::Killed);
  EXPECT_EQ(d.signal, SIGKILL);
}

TEST(WaitStatus, Stops) {
  DecodedStatus d = decode_wait_status(stopped(SIGSEGV));
  EXPECT_EQ(d.kind, WaitKind::SignalStop);
  EXPECT_EQ(d.signal, SIGSEGV);
  d = decode_wait_status(stopped(SIGTRAP, PTRACE_EVENT_STOP));
  EXPECT_EQ(d.kind, WaitKind::EventStop);
  EXPECT_FALSE(is_group_stop(d));
  d = decode_wait_status(stopped(SIGTSTP, PTRACE_EVENT_STOP));
  EXPECT_EQ(d.kind, WaitKind::EventStop);
  EXPECT_TRUE(is_group_stop(d));
  d = decode_wait_status(stopped(SIGTRAP, PTRACE_EVENT_CLONE));
  EXPECT_EQ(d.kind, WaitKind::PtraceEvent);
  EXPECT_EQ(d.event, PTRACE_EVENT_CLONE);
  d = decode_wait_status(stopped(SIGTRAP | 0x80));
  EXPECT_EQ(d.kind, WaitKind::SyscallStop);
  d = decode_wait_status(stopped(SIGTRAP));
  EXPECT_EQ(d.kind, WaitKind::SignalStop);
  EXPECT_EQ(d.signal, SIGTRAP);
}

TEST(WaitStatus, StopSignals) {
  EXPECT_TRUE(is_stop_signal(SIGSTOP));
  EXPECT_TRUE(is_stop_signal(SIGTSTP));
  EXPECT_TRUE(is_stop_signal(SIGTTIN));
  EXPECT_TRUE(is_stop_signal(SIGTTOU));
  EXPECT_FALSE(is_stop_signal(SIGTRAP));
  EXPECT_FALSE(is_stop_signal(SIGCONT));
}

} // namespace
} // namespace dprobe::process
