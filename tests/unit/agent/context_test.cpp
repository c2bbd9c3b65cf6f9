// What a program sees of the hit: arguments, pid/tid/comm (cached per thread), nsecs, and
// fault-safe str() reads.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent_harness.h"
#include "bytecode/packed.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

class Context : public ::testing::TestWithParam<AgentKind> {};

std::string str_arg(const PrintfEvent& e, size_t offset) {
  return std::string(reinterpret_cast<const char*>(e.args.data() + offset));
}
uint64_t int_arg(const PrintfEvent& e, size_t offset) {
  return bytecode::load_u64_le(e.args.data() + offset);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

TEST_P(Context, AllSixArguments) {
  Harness h("uprobe:/bin/true:f { printf(\"%d %d %d %d %d %d\\n\", arg0, arg1, arg2, arg3, arg4, "
            "arg5); }",
            GetParam());
  h.hit(0, 1, 2, 3, 4, 5, 0xfffffffffffffffa);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 1u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(int_arg(events[0], 8 * i), i + 1);
  EXPECT_EQ(int_arg(events[0], 40), 0xfffffffffffffffau);
}

void expect_identity(Harness& h, const char* name) {
  std::vector<PrintfEvent> events;
  std::thread([&h, name] {
    pthread_setname_np(pthread_self(), name);
    h.hit(0);
    h.hit(0); // from the per-thread cache, when there is one
  }).join();
  ASSERT_EQ(h.reader().drain_events(events), 2u);
  for (const PrintfEvent& e : events) {
    EXPECT_EQ(int_arg(e, 0), static_cast<uint64_t>(getpid()));
    EXPECT_NE(int_arg(e, 8), static_cast<uint64_t>(getpid())) << "a thread's tid, not the pid";
    EXPECT_EQ(str_arg(e, 16), name);
  }
  EXPECT_EQ(int_arg(events[0], 8), int_arg(events[1], 8));
}

constexpr const char* kIdentity = "uprobe:/bin/true:f { printf(\"%d %d %s\\n\", pid, tid, comm); }";

TEST_P(Context, RegistersStackArgumentsIdsAndCpu) {
  Harness h("uprobe:/bin/true:f { printf(\"%d %d %d %d %d %d %d\\n\", uid, gid, cpu, reg(\"bx\"), "
            "reg(\"r15\"), sarg0, sarg1); }",
            GetParam());
  // A trampoline's stack: the saved registers, the red zone, then the probed code's stack
  // (return address at rsp, stack arguments above it).
  constexpr size_t kRegs = sizeof(abi::SavedRegisters) / 8;
  constexpr size_t kRedZone = abi::kRedZoneSize / 8;
  alignas(16) uint64_t stack[kRegs + kRedZone + 3] = {};
  stack[kRegs + kRedZone] = 0x401234; // return address
  stack[kRegs + kRedZone + 1] = 77;   // sarg0
  stack[kRegs + kRedZone + 2] = 88;   // sarg1
  auto* regs = reinterpret_cast<abi::SavedRegisters*>(stack);
  regs->rbx = 5;
  regs->r15 = 6;
  h.hit_with(0, *regs);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 1u);
  EXPECT_EQ(int_arg(events[0], 0), static_cast<uint64_t>(getuid()));
  EXPECT_EQ(int_arg(events[0], 8), static_cast<uint64_t>(getgid()));
  EXPECT_LT(int_arg(events[0], 16), static_cast<uint64_t>(sysconf(_SC_NPROCESSORS_CONF)));
  EXPECT_EQ(int_arg(events[0], 24), 5u);
  EXPECT_EQ(int_arg(events[0], 32), 6u);
  EXPECT_EQ(int_arg(events[0], 40), 77u);
  EXPECT_EQ(int_arg(events[0], 48), 88u);
}

TEST_P(Context, DereferenceAndBufReadOwnMemoryAndFaultSafely) {
  Harness h("uprobe:/bin/true:f { printf(\"%d %d %r %d\\n\", *(int16*)arg0, *(uint32*)(arg0 + 2), "
            "buf(arg0, 3), *(uint64*)arg1); }",
            GetParam());
  static const uint8_t bytes[8] = {0xfe, 0xff, 0x01, 0x00, 0x00, 0x80, 0x41, 0x00};
  void* unmapped = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(unmapped, MAP_FAILED);
  h.hit(0, reinterpret_cast<uint64_t>(bytes), reinterpret_cast<uint64_t>(unmapped));
  munmap(unmapped, 4096);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 1u);
  EXPECT_EQ(int_arg(events[0], 0), static_cast<uint64_t>(-2));
  EXPECT_EQ(int_arg(events[0], 8), 0x80000001u);
  EXPECT_EQ(int_arg(events[0], 16), 3u); // the buffer's length, then its bytes
  EXPECT_EQ(std::memcmp(events[0].args.data() + 24, bytes, 3), 0);
  EXPECT_EQ(int_arg(events[0], 16 + bytecode::kBufferFieldSize), 0u); // a fault reads 0
}

TEST_P(Context, PidTidComm) {
  Harness h(kIdentity, GetParam());
  expect_identity(h, "agent-ctx");
  // This thread: its own tid.
  h.hit(0);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 1u);
  EXPECT_EQ(int_arg(events[0], 8), static_cast<uint64_t>(syscall(SYS_gettid)));
}

TEST_P(Context, PidTidCommWithoutFsGsBase) {
  RegionOptions options = Harness::default_options();
  options.features = 0;
  Harness h(kIdentity, GetParam(), options);
  expect_identity(h, "agent-noslot");
}

TEST_P(Context, ForgottenThreadIdentityIsFetchedAgain) {
  if (!(testing::host_features() & abi::kFeatureFsGsBase)) GTEST_SKIP() << "no FSGSBASE";
  Harness h(kIdentity, GetParam());
  char old_name[16] = {};
  pthread_getname_np(pthread_self(), old_name, sizeof old_name);
  pthread_setname_np(pthread_self(), "before");
  h.hit(0);
  pthread_setname_np(pthread_self(), "after");
  h.hit(0); // cached: still "before"
  forget_thread(h.region(), h.layout(), static_cast<uint32_t>(syscall(SYS_gettid)));
  h.hit(0);
  pthread_setname_np(pthread_self(), old_name);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 3u);
  EXPECT_EQ(str_arg(events[0], 16), "before");
  EXPECT_EQ(str_arg(events[1], 16), "before");
  EXPECT_EQ(str_arg(events[2], 16), "after");
}

TEST_P(Context, NsecsIsMonotonicNowBySyscallAndByVdso) {
  for (bool vdso : {false, true}) {
    RegionOptions options = Harness::default_options();
    if (vdso) options.clock_gettime = reinterpret_cast<uint64_t>(&clock_gettime);
    Harness h("uprobe:/bin/true:f { printf(\"%d\\n\", nsecs); }", GetParam(), options);
    const uint64_t before = now_ns();
    h.hit(0);
    const uint64_t after = now_ns();
    std::vector<PrintfEvent> events;
    ASSERT_EQ(h.reader().drain_events(events), 1u);
    EXPECT_GE(int_arg(events[0], 0), before) << "vdso " << vdso;
    EXPECT_LE(int_arg(events[0], 0), after) << "vdso " << vdso;
  }
}

TEST_P(Context, StrReadsGoodPointersAndYieldsEmptyForBadOnes) {
  Harness h("uprobe:/bin/true:f { printf(\"[%s]\\n\", str(arg0)); }", GetParam());
  // A page followed by an unmapped one; strings ending right at the boundary must still read.
  auto* pages = static_cast<char*>(
      mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(pages, MAP_FAILED);
  ASSERT_EQ(munmap(pages + 4096, 4096), 0);
  static const char kLiteral[] = "hello, agent";
  const char* long_text = "0123456789012345678901234567890123456789012345678901234567890123456789";
  h.hit(0, reinterpret_cast<uint64_t>(kLiteral));
  h.hit(0, 0);
  h.hit(0, reinterpret_cast<uint64_t>(pages + 4096));
  h.hit(0, 1);
  h.hit(0, 0xffffffffffffff00ull);
  h.hit(0, reinterpret_cast<uint64_t>(long_text));
  char* at_end = pages + 4096 - 6; // "edge!" and its NUL end exactly at the unmapped page
  std::memcpy(at_end, "edge!", 6);
  h.hit(0, reinterpret_cast<uint64_t>(at_end));
  std::memcpy(pages + 4096 - 3, "xyz", 3); // no NUL before the unmapped page
  h.hit(0, reinterpret_cast<uint64_t>(pages + 4096 - 3));
  munmap(pages, 4096);
  std::vector<PrintfEvent> events;
  ASSERT_EQ(h.reader().drain_events(events), 8u);
  EXPECT_EQ(str_arg(events[0], 0), "hello, agent");
  EXPECT_EQ(str_arg(events[1], 0), "") << "NULL";
  EXPECT_EQ(str_arg(events[2], 0), "") << "unmapped";
  EXPECT_EQ(str_arg(events[3], 0), "") << "address 1";
  EXPECT_EQ(str_arg(events[4], 0), "") << "kernel address";
  EXPECT_EQ(str_arg(events[5], 0), std::string(long_text, 63)) << "63 characters at most";
  EXPECT_EQ(str_arg(events[6], 0), "edge!");
  EXPECT_EQ(str_arg(events[7], 0), "") << "runs into the unmapped page";
  EXPECT_EQ(h.reader().counters().vm_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(Agents, Context, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
