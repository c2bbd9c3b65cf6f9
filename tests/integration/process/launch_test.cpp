// Tracee::launch: the new image is stopped at its very first instruction.
#include <elf.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "process/auxv.h"
#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::launch_with_pipes;

// True when this test process has no child at all (running or zombie).
bool no_children_left() {
  siginfo_t info{};
  int rc = ::waitid(P_ALL, 0, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL);
  if (rc == -1 && errno == ECHILD) return true;
  ADD_FAILURE() << "child " << info.si_pid << " code " << info.si_code << " status "
                << info.si_status;
  return false;
}

TEST(Launch, DynamicProgramStopsAtInterpreterEntry) {
  auto launched = launch_with_pipes({THREADS_TARGET, "work", "2", "3"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EXPECT_EQ(tracee.threads(), std::vector<pid_t>{tracee.pid()});

  auto regs = tracee.get_registers(tracee.pid());
  ASSERT_TRUE(regs) << regs.error().text();
  auto auxv = read_auxv(tracee.pid());
  ASSERT_TRUE(auxv) << auxv.error().text();
  auto base = aux_value(*auxv, AT_BASE);
  ASSERT_TRUE(base.has_value());
  ASSERT_NE(*base, 0u);
  Elf64_Ehdr interpreter{};
  ASSERT_TRUE(tracee.read_memory(
      *base, std::span(reinterpret_cast<uint8_t*>(&interpreter), sizeof interpreter)));
  ASSERT_EQ(std::memcmp(interpreter.e_ident, ELFMAG, SELFMAG), 0);
  EXPECT_EQ(regs->rip, *base + interpreter.e_entry);

  ASSERT_TRUE(tracee.resume(tracee.pid()));
  EventPump pump(tracee);
  std::string output = launched.io.read_all(1500, pump.as_function());
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  EXPECT_EQ(exited->tid, tracee.pid());
  EXPECT_NE(output.find("total: "), std::string::npos) << output;
  EXPECT_EQ(pump.count(EventKind::ThreadExited), 2u);
  EXPECT_TRUE(tracee.exited());
}

TEST(Launch, StaticProgramStopsAtEntry) {
  auto launched = launch_with_pipes({STATIC_TARGET});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  auto regs = tracee.get_registers(tracee.pid());
  ASSERT_TRUE(regs);
  auto auxv = read_auxv(tracee.pid());
  ASSERT_TRUE(auxv);
  EXPECT_EQ(aux_value(*auxv, AT_BASE).value_or(1), 0u);
  EXPECT_EQ(regs->rip, aux_value(*auxv, AT_ENTRY).value_or(0));

  ASSERT_TRUE(tracee.resume(tracee.pid()));
  EventPump pump(tracee);
  EXPECT_EQ(launched.io.read_all(1000, pump.as_function()), "static ok\n");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 4);
}

TEST(Launch, FindsProgramsOnPath) {
  std::vector<std::string> argv{"true"};
  auto tracee = Tracee::launch(argv);
  ASSERT_TRUE(tracee) << tracee.error().text();
  ASSERT_TRUE((*tracee)->resume((*tracee)->pid()));
  EventPump pump(**tracee);
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  EXPECT_TRUE(no_children_left());
}

TEST(Launch, MissingProgramIsAnErrorWithoutChild) {
  std::vector<std::string> argv{"dprobe-no-such-program-3141"};
  auto tracee = Tracee::launch(argv);
  ASSERT_FALSE(tracee);
  EXPECT_EQ(tracee.error().text(),
            "cannot execute dprobe-no-such-program-3141: No such file or directory");
  argv = {"/nonexistent/dir/prog"};
  tracee = Tracee::launch(argv);
  ASSERT_FALSE(tracee);
  EXPECT_EQ(tracee.error().text(),
            "cannot execute /nonexistent/dir/prog: No such file or directory");
  EXPECT_TRUE(no_children_left());
}

TEST(Launch, ExecFailureInTheChildLeavesNoChild) {
  // Executable bit set, but not a program the kernel can run: execve fails with ENOEXEC.
  std::string path = ::testing::TempDir() + "dprobe_not_a_program";
  {
    std::ofstream out(path);
    out << "\x01\x02\x03 not an ELF file\n";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  std::vector<std::string> argv{path};
  auto tracee = Tracee::launch(argv);
  ASSERT_FALSE(tracee);
  EXPECT_EQ(tracee.error().text(), "cannot execute " + path + ": Exec format error");
  EXPECT_TRUE(no_children_left());
  ::unlink(path.c_str());
}

} // namespace
} // namespace dprobe::process
