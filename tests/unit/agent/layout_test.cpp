// Planning, validating and recovering region layouts; writing probes; the sealed memfd.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent_harness.h"

namespace dprobe::agent {
namespace {

using testing::AgentKind;
using testing::Harness;

constexpr const char* kScript =
    "uprobe:/bin/true:f { @c[arg0] = count(); printf(\"%s %d\\n\", comm, nsecs); }"
    "uprobe:/bin/true:g { @x = arg0; @s[str(arg1)] = count(); printf(\"%d\\n\", tid); }";

TEST(RegionLayout, PlanIsConsistentAndReadBackEqual) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  auto layout = plan_region(module, 2, Harness::default_options());
  ASSERT_TRUE(layout.has_value()) << layout.error().message;
  EXPECT_EQ(layout->size % 4096, 0u);
  EXPECT_EQ(layout->probe_capacity, 2u);
  EXPECT_EQ(layout->map_count, 3u);
  EXPECT_EQ(layout->format_count, 2u);
  ASSERT_EQ(layout->format_sizes.size(), 2u);
  EXPECT_EQ(layout->format_sizes[0], 72u);
  EXPECT_EQ(layout->format_sizes[1], 8u);
  EXPECT_EQ(layout->maps[0].key_size, 8u);
  EXPECT_EQ(layout->maps[0].capacity, 8192u);
  EXPECT_EQ(layout->maps[0].max_entries, 4096u);
  EXPECT_EQ(layout->maps[0].mode, abi::kMapSharded);
  EXPECT_EQ(layout->maps[1].capacity, 1u);
  EXPECT_EQ(layout->maps[1].mode, abi::kMapShared);
  EXPECT_EQ(layout->maps[2].key_size, 64u);
  EXPECT_EQ(layout->ring_capacity(), Harness::default_options().ring_bytes);

  auto memory = SharedRegion::create(layout->size);
  ASSERT_TRUE(memory.has_value());
  ASSERT_TRUE(init_region(memory->bytes(), *layout, module, probes, Harness::default_options())
                  .has_value());
  auto back = read_layout(memory->bytes());
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->size, layout->size);
  EXPECT_EQ(back->ring.offset, layout->ring.offset);
  EXPECT_EQ(back->arena.size, layout->arena.size);
  EXPECT_EQ(back->format_sizes, layout->format_sizes);
  ASSERT_EQ(back->maps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->maps[i].key_size, layout->maps[i].key_size);
    EXPECT_EQ(back->maps[i].capacity, layout->maps[i].capacity);
    EXPECT_EQ(back->maps[i].mode, layout->maps[i].mode);
    EXPECT_EQ(back->maps[i].value_kind, layout->maps[i].value_kind);
  }
}

TEST(RegionLayout, ContextFlagsFollowWhatProgramsRead) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  EXPECT_EQ(program_context_flags(module.programs[0]), abi::kNeedsComm | abi::kNeedsNsecs);
  EXPECT_EQ(program_context_flags(module.programs[1]), abi::kNeedsTid | abi::kNeedsPid);
  std::vector<ProbeSpec> none;
  const bytecode::Module count =
      testing::compile_script("uprobe:/bin/true:f { @ = count(); }", &none);
  EXPECT_EQ(program_context_flags(count.programs[0]), 0u) << "count() needs no system call";
}

TEST(RegionLayout, ValidationRefusesBrokenLayouts) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  const RegionLayout good = *plan_region(module, 2, Harness::default_options());
  EXPECT_TRUE(validate_layout(good, good.size).has_value());
  EXPECT_FALSE(validate_layout(good, good.size - 4096).has_value()) << "region too small";
  RegionLayout l = good;
  l.ring.offset += 8;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "misaligned";
  l = good;
  l.arena.size = l.size;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "past the end";
  l = good;
  l.probes.offset = 0;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "over the header";
  l = good;
  l.ring.size -= 64;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "ring not a power of two";
  l = good;
  l.maps.pop_back();
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "map table count";
  l = good;
  l.maps[0].capacity = 3;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "capacity";
  l = good;
  l.probe_capacity = 1u << 30;
  EXPECT_FALSE(validate_layout(l, l.size).has_value()) << "probe table too small";
}

TEST(RegionLayout, PlanRefusesBadOptions) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  RegionOptions options = Harness::default_options();
  options.ring_bytes = 5000;
  EXPECT_FALSE(plan_region(module, 2, options).has_value());
  options = Harness::default_options();
  options.thread_slots = 1u << 30;
  EXPECT_FALSE(plan_region(module, 2, options).has_value());
}

TEST(RegionLayout, ReadLayoutRefusesForeignBytes) {
  std::vector<uint8_t> zeros(8192, 0);
  EXPECT_FALSE(read_layout(zeros).has_value());
  EXPECT_FALSE(read_layout(std::span<const uint8_t>(zeros).first(16)).has_value());
}

TEST(RegionWriter, RefusesBadProbesAndMismatchedModules) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  const RegionLayout layout = *plan_region(module, 2, Harness::default_options());
  auto memory = SharedRegion::create(layout.size);
  ASSERT_TRUE(memory.has_value());
  const auto options = Harness::default_options();
  ASSERT_TRUE(init_region(memory->bytes(), layout, module, probes, options).has_value());
  EXPECT_FALSE(write_probe(memory->bytes(), layout, module, 2, probes[0]).has_value());
  ProbeSpec bad{{0, 7}, 0, 0, true};
  EXPECT_FALSE(write_probe(memory->bytes(), layout, module, 0, bad).has_value());
  ProbeSpec many{std::vector<uint32_t>(abi::kMaxProgramsPerProbe + 1, 0), 0, 0, true};
  EXPECT_FALSE(write_probe(memory->bytes(), layout, module, 0, many).has_value());
  std::vector<ProbeSpec> three(3, probes[0]);
  EXPECT_FALSE(init_region(memory->bytes(), layout, module, three, options).has_value());
  bytecode::Module other = module;
  other.strings.push_back("extra");
  EXPECT_FALSE(init_region(memory->bytes(), layout, other, probes, options).has_value());
}

TEST(RegionWriter, TrapIndexIsSortedAndDoubleBuffered) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  probes[0].address = 0x5000;
  probes[1].address = 0x1000;
  Harness h(module, probes, AgentKind::Native);
  const abi::RegionHeader* header = h.header();
  const uint32_t generation = header->trap_generation;
  const uint32_t active = generation & 1;
  ASSERT_EQ(header->trap_count[active], 2u);
  const auto* index = reinterpret_cast<const abi::TrapIndexEntry*>(
      h.region().data() + header->trap_index[active].offset);
  EXPECT_EQ(index[0].address, 0x1000u);
  EXPECT_EQ(index[0].probe_id, 1u);
  EXPECT_EQ(index[1].address, 0x5000u);
  EXPECT_EQ(index[1].probe_id, 0u);
  probes[1].address = 0;
  ASSERT_TRUE(publish_trap_index(h.region(), h.layout(), probes).has_value());
  EXPECT_EQ(header->trap_generation, generation + 1);
  EXPECT_EQ(header->trap_count[active ^ 1], 1u);
  EXPECT_EQ(header->trap_count[active], 2u) << "the old buffer stays intact";
}

TEST(RegionWriter, FreshMemoryKeepsItsArenaUntouched) {
  std::vector<ProbeSpec> probes;
  const bytecode::Module module = testing::compile_script(kScript, &probes);
  RegionOptions options = Harness::default_options();
  options.zero_arena = false;
  const RegionLayout layout = *plan_region(module, 2, options);
  auto memory = SharedRegion::create(layout.size);
  ASSERT_TRUE(memory.has_value());
  std::memset(memory->bytes().data() + layout.arena.offset, 0xa5, 64); // stands for "untouched"
  ASSERT_TRUE(init_region(memory->bytes(), layout, module, probes, options).has_value());
  EXPECT_EQ(memory->bytes()[layout.arena.offset], 0xa5);
  options.zero_arena = true;
  ASSERT_TRUE(init_region(memory->bytes(), layout, module, probes, options).has_value());
  EXPECT_EQ(memory->bytes()[layout.arena.offset], 0);
}

TEST(SharedRegion, SizeIsSealed) {
  auto region = SharedRegion::create(16384);
  ASSERT_TRUE(region.has_value()) << region.error().text();
  EXPECT_EQ(region->bytes().size(), 16384u);
  EXPECT_EQ(region->bytes()[100], 0);
  EXPECT_NE(ftruncate(region->fd(), 4096), 0) << "the target could SIGBUS dprobe";
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate(region->fd(), 1 << 20), 0);
  const int seals = fcntl(region->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  SharedRegion moved = std::move(*region);
  moved.bytes()[0] = 1;
  EXPECT_FALSE(SharedRegion::create(100).has_value());
}

} // namespace
} // namespace dprobe::agent
