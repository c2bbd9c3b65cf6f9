// ustack in the agent (blob and native): the walk over tables published into the region, the
// stack table, and the controller's side of both when the target scribbles on them.
#include <pthread.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "abi/unwind.h"
#include "agent/region_writer.h"
#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

constexpr const char* kScript = "uprobe:/bin/true:f { @[ustack] = count(); }";

abi::UnwindRow row(uint32_t pc, abi::UnwindRule rule, int32_t cfa_offset = 0) {
  return abi::UnwindRow{pc, cfa_offset, 0, static_cast<uint8_t>(rule), 0};
}

/// f at 0x401000 (a leaf: CFA = rsp + 8), returning into main at 0x402000, the outermost frame.
const std::vector<abi::UnwindRow> kRows{row(0x401000, abi::kUnwindCfaRsp, 8),
                                        row(0x402000, abi::kUnwindOutermost),
                                        row(0x403000, abi::kUnwindNoInfo)};
const std::vector<abi::UnwindModule> kModules{{0x400000, 0x500000, 0, 0, 3}};

std::unique_ptr<Harness> ustack_harness(AgentKind kind, uint64_t probed_ip,
                                        RegionOptions options = Harness::default_options()) {
  std::vector<ProbeSpec> probes;
  bytecode::Module module = testing::compile_script(kScript, &probes);
  probes[0].ip = probed_ip;
  return std::make_unique<Harness>(std::move(module), std::move(probes), kind, options);
}

/// A hit whose probed code's stack holds `return_address` at rsp.
void hit_with_return_address(const Harness& h, uint64_t return_address) {
  constexpr size_t kRegs = sizeof(abi::SavedRegisters) / 8;
  constexpr size_t kRedZone = abi::kRedZoneSize / 8;
  alignas(16) uint64_t stack[kRegs + kRedZone + 2] = {};
  stack[kRegs + kRedZone] = return_address;
  h.hit_with(0, *reinterpret_cast<abi::SavedRegisters*>(stack));
}

struct Visited {
  uint64_t id;
  uint32_t pid;
  std::vector<uint64_t> frames;
};

std::vector<Visited> new_stacks(RegionReader& reader) {
  std::vector<Visited> out;
  reader.visit_new_stacks([&out](uint64_t id, uint32_t pid, std::span<const uint64_t> frames) {
    out.push_back(Visited{id, pid, {frames.begin(), frames.end()}});
  });
  return out;
}

class UStack : public ::testing::TestWithParam<AgentKind> {};

TEST_P(UStack, WalksWithPublishedTablesAndRecordsEachStackOnce) {
  auto h = ustack_harness(GetParam(), 0x401010);
  ASSERT_EQ(publish_unwind_tables(h->region(), h->layout(), kModules, kRows), 1u);
  hit_with_return_address(*h, 0x402010);
  hit_with_return_address(*h, 0x402010);
  const auto pid = static_cast<uint32_t>(::getpid());
  const std::vector<uint64_t> frames{0x401010, 0x402010};
  const uint64_t id = abi::stack_id(pid, frames.data(), 2);
  std::string key(8, '\0');
  std::memcpy(key.data(), &id, 8);
  EXPECT_EQ(h->map(0), (std::map<std::string, uint64_t>{{key, 2}}));
  const std::vector<Visited> stacks = new_stacks(h->reader());
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].id, id);
  EXPECT_EQ(stacks[0].pid, pid);
  EXPECT_EQ(stacks[0].frames, frames);
  EXPECT_TRUE(new_stacks(h->reader()).empty()); // each once
  EXPECT_EQ(h->reader().counters().dropped_stacks, 0u);
}

TEST_P(UStack, AFullTableCountsDroppedStacks) {
  RegionOptions options = Harness::default_options();
  options.stack_capacity = 1;
  auto h = ustack_harness(GetParam(), 0x401010, options);
  ASSERT_EQ(publish_unwind_tables(h->region(), h->layout(), kModules, kRows), 1u);
  hit_with_return_address(*h, 0x402010);
  hit_with_return_address(*h, 0x402020);
  hit_with_return_address(*h, 0x402010);
  EXPECT_EQ(h->reader().counters().dropped_stacks, 1u);
  EXPECT_EQ(new_stacks(h->reader()).size(), 1u);
  EXPECT_EQ(h->map(0).size(), 2u); // the dropped stack still counts under its id
}

TEST_P(UStack, AZeroReturnAddressEndsTheWalk) {
  auto h = ustack_harness(GetParam(), 0x401010);
  ASSERT_EQ(publish_unwind_tables(h->region(), h->layout(), kModules, kRows), 1u);
  hit_with_return_address(*h, 0);
  const std::vector<Visited> stacks = new_stacks(h->reader());
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].frames, (std::vector<uint64_t>{0x401010}));
}

/// Bytes of the probed thread's stack one hit uses: the hit runs on a thread whose stack was
/// painted first.
size_t stack_bytes_used(const Harness& h, uint64_t return_address) {
  constexpr size_t kSize = 256 * 1024;
  constexpr uint8_t kPaint = 0xa5;
  auto* stack = static_cast<uint8_t*>(std::aligned_alloc(4096, kSize));
  std::memset(stack, kPaint, kSize);
  struct Job {
    const Harness* h;
    uint64_t return_address;
  } job{&h, return_address};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, kSize);
  pthread_t thread;
  EXPECT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  auto* j = static_cast<Job*>(arg);
                  hit_with_return_address(*j->h, j->return_address);
                  return nullptr;
                },
                &job),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  size_t untouched = 0;
  while (untouched < kSize && stack[untouched] == kPaint) ++untouched;
  std::free(stack);
  return kSize - untouched;
}

TEST_P(UStack, KeepsTheFramesOffTheProbedThreadsStack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer changes every frame's size";
#endif
  // With room in the VM frame (this script's is nearly empty), the window and the 1 KB of
  // frames go there: a ustack hit takes little more of the probed thread's stack than a hit
  // without one, which matters on a thread whose stack is nearly used up.
  auto with = ustack_harness(GetParam(), 0x401010);
  ASSERT_EQ(publish_unwind_tables(with->region(), with->layout(), kModules, kRows), 1u);
  std::vector<ProbeSpec> probes;
  bytecode::Module module = testing::compile_script("uprobe:/bin/true:f { @[arg1] = count(); }", &probes);
  probes[0].ip = 0x401010;
  Harness without(std::move(module), std::move(probes), GetParam());
  const size_t used_with = stack_bytes_used(*with, 0x402010);
  const size_t used_without = stack_bytes_used(without, 0x402010);
  EXPECT_EQ(new_stacks(with->reader()).size(), 1u);
  EXPECT_LT(used_with, used_without + 768) << used_with << " vs " << used_without;
}

INSTANTIATE_TEST_SUITE_P(Agents, UStack, ::testing::Values(AgentKind::Blob, AgentKind::Native),
                         [](const auto& info) { return testing::kind_name(info.param); });

// The controller's side against a hostile target (invariant 8).

abi::StackEntry* stack_entries(Harness& h) {
  return reinterpret_cast<abi::StackEntry*>(h.region().data() + h.layout().stacks.offset);
}

TEST(UStackHostile, VisitNewStacksChecksEveryEntry) {
  auto h = ustack_harness(AgentKind::Native, 0x401010);
  abi::StackEntry* entries = stack_entries(*h);
  const uint32_t capacity = h->layout().stack_capacity;
  ASSERT_GE(capacity, 8u);
  const uint64_t frames[] = {0x401010, 0x402010};
  const uint64_t good = abi::stack_id(42, frames, 2);
  // As the agent records: the entry, then its ready flag, then the region's count of stacks
  // (dprobe scans the table only when that count moved).
  uint64_t* recorded = &h->header()->stacks_recorded;
  auto fill = [&](uint32_t slot, uint64_t id, uint32_t pid, uint32_t depth, uint32_t ready) {
    abi::StackEntry& e = entries[slot];
    e.id = id;
    e.pid = pid;
    e.depth = depth;
    e.ready = ready;
    for (uint32_t i = 0; i < abi::kMaxStackFrames; ++i) e.frames[i] = 0x401010 + 0x1000 * i;
    if (ready != 0) __atomic_fetch_add(recorded, 1, __ATOMIC_RELEASE);
  };
  fill(0, good, 42, 2, 1);            // a real one
  fill(1, good ^ 2, 42, 2, 1);        // an id that does not match the frames
  fill(2, good, 43, 2, 1);            // the right id for another process
  fill(3, ~0ull, 42, 200, 1);         // depth past kMaxStackFrames
  fill(4, ~0ull, 42, 0xffffffffu, 1); // depth past everything
  fill(5, abi::stack_id(42, frames, 2), 42, 2, 0); // being written: not ready yet
  std::vector<Visited> stacks = new_stacks(h->reader());
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].id, good);
  EXPECT_EQ(stacks[0].frames, (std::vector<uint64_t>(frames, frames + 2)));
  // The writer finishes entry 5: read then, once.
  __atomic_store_n(&entries[5].ready, 1u, __ATOMIC_RELEASE);
  // Not before the count moves: the scan is skipped.
  EXPECT_TRUE(new_stacks(h->reader()).empty());
  __atomic_fetch_add(recorded, 1, __ATOMIC_RELEASE);
  stacks = new_stacks(h->reader());
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].id, good);
  EXPECT_TRUE(new_stacks(h->reader()).empty());
  // A full-depth entry with garbage everywhere else still reads within bounds.
  fill(capacity - 1, 0, 0, 0, 0);
  uint64_t deep[abi::kMaxStackFrames];
  for (uint32_t i = 0; i < abi::kMaxStackFrames; ++i) deep[i] = 0x401010 + 0x1000 * i;
  fill(capacity - 1, abi::stack_id(7, deep, abi::kMaxStackFrames), 7, abi::kMaxStackFrames, 1);
  stacks = new_stacks(h->reader());
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_EQ(stacks[0].frames.size(), abi::kMaxStackFrames);
}

TEST(UStackHostile, PublishStopsAtTheRegionsCapacities) {
  RegionOptions options = Harness::default_options();
  options.unwind_module_capacity = 2;
  options.unwind_row_capacity = 5;
  auto h = ustack_harness(AgentKind::Native, 0x401010, options);
  const std::vector<abi::UnwindRow> rows(8, row(0x401000, abi::kUnwindCfaRsp, 8));
  // Module 1's rows end past the row capacity: it and every later module wait.
  std::vector<abi::UnwindModule> modules{{0x400000, 0x500000, 0, 0, 3},
                                         {0x600000, 0x700000, 0, 3, 3},
                                         {0x800000, 0x900000, 0, 6, 1}};
  EXPECT_EQ(publish_unwind_tables(h->region(), h->layout(), modules, rows), 1u);
  modules[1].row_count = 2;
  EXPECT_EQ(publish_unwind_tables(h->region(), h->layout(), modules, rows), 2u);
  // Module capacity reached.
  EXPECT_EQ(publish_unwind_tables(h->region(), h->layout(), modules, rows), 2u);
  EXPECT_EQ(h->header()->unwind_module_count, 2u);
  // Rows the caller's table does not have are never copied.
  modules = {{0x400000, 0x500000, 0, 0, 3}, {0x600000, 0x700000, 0, 7, 2}};
  auto fresh = ustack_harness(AgentKind::Native, 0x401010, options);
  EXPECT_EQ(publish_unwind_tables(fresh->region(), fresh->layout(), modules, rows), 1u);
}

TEST(UStackHostile, PublishSurvivesAScribbledModuleCount) {
  RegionOptions options = Harness::default_options();
  options.unwind_module_capacity = 4;
  options.unwind_row_capacity = 16;
  auto h = ustack_harness(AgentKind::Native, 0x401010, options);
  const std::vector<abi::UnwindRow> rows(4, row(0x401000, abi::kUnwindCfaRsp, 8));
  const std::vector<abi::UnwindModule> modules{{0x400000, 0x500000, 0, 0, 2},
                                               {0x600000, 0x700000, 0, 2, 2}};
  h->header()->unwind_module_count = 0xffffffffu;
  EXPECT_LE(publish_unwind_tables(h->region(), h->layout(), modules, rows), 4u);
  EXPECT_LE(h->header()->unwind_module_count, 4u);
  h->header()->unwind_module_count = 0;
  EXPECT_EQ(publish_unwind_tables(h->region(), h->layout(), modules, rows), 2u);
}

} // namespace
} // namespace dprobe::agent
