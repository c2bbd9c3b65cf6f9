#include "process/thread_table.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

TEST(ThreadTable, AddFindRemove) {
  ThreadTable table;
  table.add(30, ThreadState::Running);
  table.add(10, ThreadState::Zombie);
  ThreadInfo& t = table.add(20, ThreadState::Stopped);
  t.stop = StopKind::Interrupt;
  // Adding again keeps the existing entry.
  EXPECT_EQ(table.add(20, ThreadState::Running).state, ThreadState::Stopped);
  EXPECT_EQ(table.live_tids(), (std::vector<pid_t>{20, 30}));
  EXPECT_EQ(table.all_tids(), (std::vector<pid_t>{10, 20, 30}));
  EXPECT_EQ(table.tids_in({ThreadState::Running, ThreadState::Zombie}),
            (std::vector<pid_t>{10, 30}));
  EXPECT_TRUE(table.any_in({ThreadState::Stopped}));
  EXPECT_FALSE(table.any_in({ThreadState::Held, ThreadState::Queued}));
  table.remove(20);
  EXPECT_EQ(table.find(20), nullptr);
  EXPECT_EQ(table.size(), 2u);
}

TEST(ThreadTable, StateClasses) {
  EXPECT_TRUE(is_stopped(ThreadState::Stopped));
  EXPECT_TRUE(is_stopped(ThreadState::Queued));
  EXPECT_TRUE(is_stopped(ThreadState::Held));
  EXPECT_FALSE(is_stopped(ThreadState::Listening));
  EXPECT_FALSE(is_stopped(ThreadState::Zombie));
  EXPECT_TRUE(needs_interrupt(ThreadState::Running));
  EXPECT_TRUE(needs_interrupt(ThreadState::Listening));
  EXPECT_FALSE(needs_interrupt(ThreadState::Starting));
  EXPECT_TRUE(awaits_stop(ThreadState::Starting));
  EXPECT_TRUE(awaits_stop(ThreadState::Stopping));
  EXPECT_FALSE(awaits_stop(ThreadState::Held));
}

TEST(ThreadTable, InternalResume) {
  ThreadInfo t;
  t.stop = StopKind::Interrupt;
  EXPECT_EQ(internal_resume_mode(t), ResumeHow::Cont);
  EXPECT_EQ(internal_resume_signal(t), 0);
  // Job control keeps working: a group-stopped thread is only listened to.
  t.stop = StopKind::GroupStop;
  t.step_pending = true;
  EXPECT_EQ(internal_resume_mode(t), ResumeHow::Listen);
  // A step the caller asked for survives our interrupt.
  t.stop = StopKind::Interrupt;
  EXPECT_EQ(internal_resume_mode(t), ResumeHow::Step);
  // A signal in delivery is never dropped.
  t.stop = StopKind::SignalDelivery;
  t.stop_signal = SIGUSR1;
  EXPECT_EQ(internal_resume_signal(t), SIGUSR1);
}

} // namespace
} // namespace dprobe::process
