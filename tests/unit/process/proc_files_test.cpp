#include "process/proc_files.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

constexpr std::string_view kStatus = "Name:\tgdb\n"
                                     "Umask:\t0022\n"
                                     "State:\tS (sleeping)\n"
                                     "Tgid:\t4242\n"
                                     "PPid:\t1\n"
                                     "TracerPid:\t77\n";

TEST(StatusField, FindsExactKeys) {
  EXPECT_EQ(status_field(kStatus, "Name"), "gdb");
  EXPECT_EQ(status_field(kStatus, "State"), "S (sleeping)");
  EXPECT_EQ(status_number(kStatus, "TracerPid"), 77);
  EXPECT_EQ(status_number(kStatus, "Tgid"), 4242);
  EXPECT_EQ(status_field(kStatus, "Tracer"), std::nullopt);
  EXPECT_EQ(status_field(kStatus, "Missing"), std::nullopt);
  EXPECT_EQ(status_number(kStatus, "Name"), std::nullopt);
}

TEST(StatState, CommWithParenthesesAndSpaces) {
  EXPECT_EQ(stat_state("4242 (a) b) (c) Z 1 2 3"), 'Z');
  EXPECT_EQ(stat_state("1 (init) S 0 1 1"), 'S');
  EXPECT_EQ(stat_state("garbage"), std::nullopt);
  EXPECT_EQ(stat_state("1 (x)"), std::nullopt);
}

TEST(ProcFiles, OwnProcess) {
  auto tasks = list_tasks(::getpid());
  ASSERT_TRUE(tasks);
  ASSERT_FALSE(tasks->empty());
  EXPECT_EQ(tasks->front(), ::getpid());
  EXPECT_EQ(thread_state(::getpid(), ::getpid()), 'R');
  EXPECT_EQ(read_comm(::getpid()), "dprobe_process_"); // truncated to 15 characters
  EXPECT_EQ(read_comm(-5), "?");
  auto missing = read_text_file("/nonexistent");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errno_value, ENOENT);
}

} // namespace
} // namespace dprobe::process
