// The agent's SIGTRAP handler: an int3 at a probe address runs the probe and resumes at the
// probe's resume address; an int3 elsewhere goes to the previous handler.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "abi/agent_blob.h"
#include "agent_harness.h"

extern "C" dprobe::abi::AgentBlobHeader agent_blob_header; // the native agent's stand-in

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

// The agent reads the kernel's ucontext by these offsets.
static_assert(offsetof(ucontext_t, uc_mcontext.gregs) == 40);
static_assert(REG_RIP == 16 && REG_RDI == 8 && REG_EFL == 17 && REG_RSP == 15);

struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};
constexpr uint64_t kSaSiginfo = 4;
constexpr uint64_t kSaRestorer = 0x04000000;

int rt_sigaction(int signal, const KernelSigaction* act, KernelSigaction* old) {
  return static_cast<int>(syscall(SYS_rt_sigaction, signal, act, old, 8));
}

int g_foreign_traps = 0;
void foreign_handler(int, siginfo_t*, void*) {
  ++g_foreign_traps;
}

class Sigtrap : public ::testing::TestWithParam<AgentKind> {};

TEST_P(Sigtrap, ProbeInt3RunsTheProbeAndResumesAtTheBoostedCopy) {
  auto* page = static_cast<uint8_t*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(page, MAP_FAILED);
  // The probed function: lea eax, [rdi+1]; ret -- with its first byte replaced by int3.
  uint8_t* const probed = page;
  const uint8_t code[] = {0xcc, 0x47, 0x01, 0xc3};
  std::memcpy(probed, code, sizeof code);
  // The boosted copy: lea eax, [rdi+1]; jmp back to the ret.
  uint8_t* const copy = page + 64;
  const uint8_t lea[] = {0x8d, 0x47, 0x01, 0xe9};
  std::memcpy(copy, lea, sizeof lea);
  const int32_t rel = static_cast<int32_t>((probed + 3) - (copy + 8));
  std::memcpy(copy + 4, &rel, 4);
  // An int3 that is not a probe: int3; ret.
  uint8_t* const foreign = page + 128;
  foreign[0] = 0xcc;
  foreign[1] = 0xc3;
  ASSERT_EQ(mprotect(page, 4096, PROT_READ | PROT_EXEC), 0);

  std::vector<ProbeSpec> probes;
  bytecode::Module module =
      testing::compile_script("uprobe:/bin/true:f { @c[arg0] = count(); }", &probes);
  probes[0].address = reinterpret_cast<uint64_t>(probed);
  probes[0].resume_address = reinterpret_cast<uint64_t>(copy);
  RegionOptions options = Harness::default_options();
  options.sigtrap_prev_handler = reinterpret_cast<uint64_t>(&foreign_handler);
  options.sigtrap_prev_flags = kSaSiginfo;
  Harness h(module, probes, GetParam(), options);

  KernelSigaction act{};
  KernelSigaction old{};
  if (GetParam() == AgentKind::Blob) {
    act.handler = reinterpret_cast<uint64_t>(h.blob()->sigtrap());
    act.restorer = reinterpret_cast<uint64_t>(h.blob()->restorer());
  } else {
    agent_blob_header.region_address = reinterpret_cast<uint64_t>(h.header());
    act.handler = reinterpret_cast<uint64_t>(&agent_sigtrap);
    // The native agent has no restorer of its own here: borrow a loaded blob's.
    static testing::LoadedBlob blob(0);
    act.restorer = reinterpret_cast<uint64_t>(blob.restorer());
  }
  act.flags = kSaSiginfo | kSaRestorer;
  ASSERT_EQ(rt_sigaction(SIGTRAP, &act, &old), 0);

  auto* fn = reinterpret_cast<int (*)(int)>(probed);
  int wrong = 0;
  for (int i = 0; i < 300; ++i)
    wrong += fn(41 + i % 3) != 42 + i % 3;
  g_foreign_traps = 0;
  reinterpret_cast<void (*)()>(foreign)();

  ASSERT_EQ(rt_sigaction(SIGTRAP, &old, nullptr), 0);
  agent_blob_header.region_address = 0;
  munmap(page, 4096);

  EXPECT_EQ(wrong, 0);
  const auto m = h.map(0);
  ASSERT_EQ(m.size(), 3u);
  for (int key = 41; key <= 43; ++key)
    EXPECT_EQ(m.at(testing::int_key(key)), 100u);
  EXPECT_EQ(h.reader().probe_hits(0), 300u);
  EXPECT_EQ(g_foreign_traps, 1);
  EXPECT_EQ(h.reader().counters().foreign_traps, 1u);
}

INSTANTIATE_TEST_SUITE_P(Agents, Sigtrap, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

} // namespace
} // namespace dprobe::agent
