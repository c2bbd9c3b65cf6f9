// Memory access: writes to text are private to the traced process.
#include <gtest/gtest.h>

#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::launch_with_pipes;
using testing::TargetProcess;

TEST(Memory, WritingTextChangesOnlyTheTracedProcess) {
  const std::string before = testing::file_checksum(THREADS_TARGET);
  auto other = TargetProcess::spawn({THREADS_TARGET, "serve", "0"});
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  auto ready = launched.io.read_line(1000, pump.as_function());
  ASSERT_TRUE(ready.has_value());
  const uint64_t probed = testing::parse_probed_address(*ready);
  ASSERT_TRUE(other->io().read_line(1000).has_value());

  ASSERT_TRUE(tracee.stop_all());
  const std::array<uint8_t, 6> return_1234{0xb8, 0xd2, 0x04, 0x00, 0x00, 0xc3}; // mov eax,1234; ret
  ASSERT_TRUE(tracee.write_memory(probed, return_1234));
  std::array<uint8_t, 6> back{};
  ASSERT_TRUE(tracee.read_memory(probed, back));
  EXPECT_EQ(back, return_1234);
  ASSERT_TRUE(tracee.resume_all());

  launched.io.send("call 5");
  other->io().send("call 5");
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "probed(5)=1234");
  EXPECT_EQ(other->io().read_line(1000), "probed(5)=16");
  EXPECT_EQ(testing::file_checksum(THREADS_TARGET), before);
  launched.io.send("exit");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
}

TEST(Memory, ErrorsNameTheAddress) {
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "0"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  std::array<uint8_t, 8> bytes{};
  auto read = tracee.read_memory(0x10, bytes);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().text(),
            fmt::format("/proc/{}/mem: read of 8 bytes at 0x10: Input/output error", tracee.pid()));
  auto written = tracee.write_memory(0x10, bytes);
  ASSERT_FALSE(written);
  EXPECT_EQ(
      written.error().text(),
      fmt::format("/proc/{}/mem: write of 8 bytes at 0x10: Input/output error", tracee.pid()));
}

} // namespace
} // namespace dprobe::process
