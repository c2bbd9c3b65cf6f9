#include "agent_harness.h"

#include "agent/hit_counts.h"

#include <sys/auxv.h>
#include <sys/mman.h>

#include <cstring>

#include <gtest/gtest.h>

#include "abi/agent_blob.h"
#include "agent/agent_blob.h"
#include "lang/compiler.h"

namespace dprobe::agent::testing {

LoadedBlob::LoadedBlob(uint64_t region_address) {
  const std::vector<uint8_t> image = agent_image_for(region_address);
  size_ = (image.size() + 4095) / 4096 * 4096;
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    ADD_FAILURE() << "mmap for the blob failed";
    return;
  }
  std::memcpy(p, image.data(), image.size());
  if (mprotect(p, size_, PROT_READ | PROT_EXEC) != 0) ADD_FAILURE() << "mprotect RX failed";
  base_ = static_cast<uint8_t*>(p);
}

LoadedBlob::~LoadedBlob() {
  if (base_ != nullptr) munmap(base_, size_);
}

abi::DispatchFunction LoadedBlob::dispatch() const {
  auto info = agent_blob_info();
  if (!info) return nullptr;
  return reinterpret_cast<abi::DispatchFunction>(base_ + info->dispatch_offset);
}

void* LoadedBlob::sigtrap() const {
  auto info = agent_blob_info();
  return info ? base_ + info->sigtrap_offset : nullptr;
}

void* LoadedBlob::restorer() const {
  auto info = agent_blob_info();
  return info ? base_ + info->restorer_offset : nullptr;
}

uint32_t host_features() {
  constexpr unsigned long kHwcap2FsGsBase = 1ul << 1;
  return (getauxval(AT_HWCAP2) & kHwcap2FsGsBase) != 0 ? abi::kFeatureFsGsBase : 0;
}

bytecode::Module compile_script(std::string_view script, std::vector<ProbeSpec>* probes) {
  auto compiled = lang::compile(script, "test");
  EXPECT_TRUE(compiled.has_value()) << (compiled ? "" : compiled.error().message);
  if (!compiled) return {};
  for (const lang::ProbeBlock& block : compiled->probes) {
    probes->push_back(ProbeSpec{{block.program_index}, 0, 0, true});
  }
  return std::move(compiled->module);
}

std::string int_key(uint64_t value) {
  std::string key(8, '\0');
  std::memcpy(key.data(), &value, 8);
  return key;
}

RegionOptions Harness::default_options() {
  RegionOptions options;
  options.thread_slots = 64;
  options.scratch_states = 4;
  options.ring_bytes = 1u << 16;
  options.arena_bytes = 8u << 20;
  options.features = host_features();
  return options;
}

Harness::Harness(bytecode::Module module, std::vector<ProbeSpec> probes, AgentKind kind,
                 RegionOptions options)
    : module_(std::move(module)), probes_(std::move(probes)) {
  setup(kind, options);
}

Harness::Harness(std::string_view script, AgentKind kind, RegionOptions options) {
  module_ = compile_script(script, &probes_);
  setup(kind, options);
}

void Harness::setup(AgentKind kind, const RegionOptions& options) {
  auto layout = plan_region(module_, static_cast<uint32_t>(probes_.size()), options);
  ASSERT_TRUE(layout.has_value()) << layout.error().message;
  layout_ = *layout;
  auto memory = SharedRegion::create(layout_.size);
  ASSERT_TRUE(memory.has_value()) << memory.error().text();
  memory_ = std::make_unique<SharedRegion>(std::move(*memory));
  auto ok = init_region(memory_->bytes(), layout_, module_, probes_, options);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  auto reader = RegionReader::create(memory_->bytes(), layout_);
  ASSERT_TRUE(reader.has_value()) << reader.error().message;
  reader_ = std::make_unique<RegionReader>(std::move(*reader));
  if (kind == AgentKind::Blob) {
    blob_ = std::make_unique<LoadedBlob>(reinterpret_cast<uint64_t>(header()));
    dispatch_ = blob_->dispatch();
  } else {
    dispatch_ = &agent_dispatch;
  }
  ASSERT_NE(dispatch_, nullptr);
}

void Harness::hit(uint32_t probe_id, uint64_t arg0, uint64_t arg1, uint64_t arg2, uint64_t arg3,
                  uint64_t arg4, uint64_t arg5) const {
  abi::SavedRegisters regs{};
  regs.rdi = arg0;
  regs.rsi = arg1;
  regs.rdx = arg2;
  regs.rcx = arg3;
  regs.r8 = arg4;
  regs.r9 = arg5;
  hit_with(probe_id, regs);
}

void Harness::hit_with(uint32_t probe_id, abi::SavedRegisters& regs) const {
  dispatch_(header(), probe_id, &regs);
}

std::map<std::string, uint64_t> Harness::map(uint32_t map_id) {
  std::map<std::string, uint64_t> result;
  for (const output::MapEntry& e : reader_->map_entries(map_id)) {
    EXPECT_TRUE(result.emplace(e.key, e.value).second) << "key merged twice";
  }
  // As the engine merges them: a hit-counted map has no entries of its own.
  const std::vector<uint64_t> counted = hit_counted_values(*reader_, module_, probes_);
  if (map_id < counted.size() && counted[map_id] != 0) {
    EXPECT_TRUE(result.empty()) << "hit-counted map with entries of its own";
    result[""] += counted[map_id];
  }
  return result;
}

uint64_t Harness::scalar(uint32_t map_id) {
  const auto entries = map(map_id);
  if (entries.empty()) return 0;
  EXPECT_EQ(entries.size(), 1u);
  return entries.begin()->second;
}

} // namespace dprobe::agent::testing
