// ns per agent_dispatch call, the agent's share of a probe hit (the trampoline's register
// save/restore comes on top). Run: BUILD/src/agent/agent_dispatch_bench
#include <benchmark/benchmark.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "abi/region.h"
#include "abi/saved_registers.h"
#include "agent/agent_blob.h"
#include "agent/region_layout.h"
#include "agent/region_reader.h"
#include "agent/region_writer.h"
#include "agent/shared_region.h"
#include "bytecode/isa.h"
#include "bytecode/module.h"

extern "C" void agent_dispatch(dprobe::abi::RegionHeader*, uint32_t, dprobe::abi::SavedRegisters*);

namespace dprobe::agent {
namespace {

using bytecode::Insn;
using bytecode::Op;

bytecode::Module count_module(bool keyed) {
  bytecode::Module m;
  bytecode::Program p;
  p.name = keyed ? "keyed count" : "count";
  if (keyed) {
    p.code.push_back(
        Insn{Op::LoadCtx, 0, 0, 0, static_cast<uint32_t>(bytecode::CtxField::Arg0), 0});
    p.code.push_back(Insn{Op::Store64, 0, 0, 0, 0, 0});
    p.frame_size = 8;
  }
  p.code.push_back(Insn{Op::LoadImm, 0, 0, 0, 0, 1});
  p.code.push_back(Insn{Op::MapUpdate, 0, 0, static_cast<uint8_t>(bytecode::UpdateOp::Add), 0, 0});
  p.code.push_back(Insn{Op::Ret, 0, 0, 0, 0, 0});
  m.programs.push_back(p);
  bytecode::MapSchema map;
  map.name = "@";
  map.value = bytecode::MapValueKind::Count;
  if (keyed) map.key = {bytecode::FieldKind::Int};
  map.max_entries = keyed ? 4096 : 1;
  m.maps.push_back(map);
  return m;
}

bytecode::Module printf_module() {
  bytecode::Module m;
  bytecode::Program p;
  p.name = "printf";
  p.code.push_back(Insn{Op::LoadCtx, 0, 0, 0, static_cast<uint32_t>(bytecode::CtxField::Arg0), 0});
  p.code.push_back(Insn{Op::Store64, 0, 0, 0, 0, 0});
  p.code.push_back(Insn{Op::Printf, 0, 0, 0, 0, bytecode::frame_range(0, 8)});
  p.frame_size = 8;
  m.programs.push_back(p);
  m.formats.push_back(bytecode::PrintfFormat{"%d\n", {bytecode::FieldKind::Int}});
  return m;
}

/// A region and an agent, without the test harness.
struct Setup {
  Setup(const bytecode::Module& module, bool blob, bool fsgsbase, uint64_t ring_bytes = 1u << 16,
        bool tls_self = false) {
    RegionOptions options;
    options.thread_slots = 64;
    options.ring_bytes = ring_bytes;
    options.arena_bytes = 8u << 20;
    options.features = fsgsbase && (getauxval(AT_HWCAP2) & 2) ? abi::kFeatureFsGsBase : 0;
    // This process is a glibc program: its threads follow the TLS ABI.
    if (tls_self) options.features |= abi::kFeatureTlsSelfPointer;
    std::vector<ProbeSpec> probes{ProbeSpec{{0}, 0, 0, true}};
    layout = *plan_region(module, 1, options);
    region = std::make_unique<SharedRegion>(std::move(*SharedRegion::create(layout.size)));
    if (!init_region(region->bytes(), layout, module, probes, options)) std::abort();
    reader =
        std::make_unique<RegionReader>(std::move(*RegionReader::create(region->bytes(), layout)));
    if (blob) {
      const auto image = agent_image_for(reinterpret_cast<uint64_t>(region->bytes().data()));
      code_size = (image.size() + 4095) / 4096 * 4096;
      code = static_cast<uint8_t*>(
          mmap(nullptr, code_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      std::memcpy(code, image.data(), image.size());
      mprotect(code, code_size, PROT_READ | PROT_EXEC);
      dispatch = reinterpret_cast<abi::DispatchFunction>(code + agent_blob_info()->dispatch_offset);
    } else {
      dispatch = &agent_dispatch;
    }
  }
  ~Setup() {
    if (code != nullptr) munmap(code, code_size);
  }
  abi::RegionHeader* header() const {
    return reinterpret_cast<abi::RegionHeader*>(region->bytes().data());
  }

  RegionLayout layout;
  std::unique_ptr<SharedRegion> region;
  std::unique_ptr<RegionReader> reader;
  abi::DispatchFunction dispatch = nullptr;
  uint8_t* code = nullptr;
  size_t code_size = 0;
};

void run_count(benchmark::State& state, bool keyed, bool blob, bool fsgsbase,
               bool tls_self = false) {
  Setup s(count_module(keyed), blob, fsgsbase, 1u << 16, tls_self);
  abi::SavedRegisters regs{};
  abi::RegionHeader* h = s.header();
  uint64_t i = 0;
  for (auto _ : state) {
    regs.rdi = i++ & 15;
    s.dispatch(h, 0, &regs);
  }
  uint64_t total = 0;
  for (const auto& e : s.reader->map_entries(0))
    total += e.value;
  if (total != i) state.SkipWithError("count mismatch");
}

void BM_CountBlob(benchmark::State& state) {
  run_count(state, false, true, true);
}
void BM_CountBlobTlsSelf(benchmark::State& state) {
  run_count(state, false, true, true, true);
}
void BM_KeyedCountBlobTlsSelf(benchmark::State& state) {
  run_count(state, true, true, true, true);
}
void BM_CountNative(benchmark::State& state) {
  run_count(state, false, false, true);
}
void BM_KeyedCountBlob(benchmark::State& state) {
  run_count(state, true, true, true);
}
void BM_CountBlobSharedPath(benchmark::State& state) {
  run_count(state, false, true, false);
}

void BM_PrintfBlob(benchmark::State& state) {
  Setup s(printf_module(), true, true, 1u << 26);
  abi::SavedRegisters regs{};
  abi::RegionHeader* h = s.header();
  std::vector<PrintfEvent> events;
  uint64_t i = 0;
  for (auto _ : state) {
    regs.rdi = i;
    s.dispatch(h, 0, &regs);
    if (++i % (1u << 20) == 0) {
      state.PauseTiming();
      events.clear();
      s.reader->drain_events(events);
      state.ResumeTiming();
    }
  }
  if (s.reader->counters().dropped_events != 0) state.SkipWithError("events dropped");
}

/// A counter bumped through the interpreter only (no fast path): `@ = count(); @n = count();`
/// is one program of two updates.
void BM_InterpretedCountsBlob(benchmark::State& state) {
  bytecode::Module m = count_module(false);
  m.programs[0].code.insert(m.programs[0].code.end() - 1, m.programs[0].code.begin(),
                            m.programs[0].code.end() - 1);
  Setup s(m, true, true, 1u << 16, true);
  abi::SavedRegisters regs{};
  abi::RegionHeader* h = s.header();
  for (auto _ : state)
    s.dispatch(h, 0, &regs);
}

/// The floor: an indirect call of an empty function with the same signature.
__attribute__((noinline)) void empty_dispatch(abi::RegionHeader*, uint32_t, abi::SavedRegisters*) {
  benchmark::ClobberMemory();
}
void BM_EmptyCall(benchmark::State& state) {
  abi::SavedRegisters regs{};
  abi::DispatchFunction volatile fn = &empty_dispatch;
  for (auto _ : state)
    fn(nullptr, 0, &regs);
}

BENCHMARK(BM_EmptyCall);
BENCHMARK(BM_CountBlob);
BENCHMARK(BM_CountBlobTlsSelf);
BENCHMARK(BM_KeyedCountBlobTlsSelf);
BENCHMARK(BM_CountNative);
BENCHMARK(BM_KeyedCountBlob);
BENCHMARK(BM_CountBlobSharedPath);
BENCHMARK(BM_InterpretedCountsBlob);
BENCHMARK(BM_PrintfBlob);

} // namespace
} // namespace dprobe::agent

BENCHMARK_MAIN();
