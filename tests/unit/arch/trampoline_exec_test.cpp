// Runs jump-optimized probes for real, in this process: a copy of a small asm function is patched
// with the jmp to a trampoline whose dispatcher is an asm shim (dprobe_test_dispatch) around
// dprobe_test_record_hit below. Every run of a patched function is compared with a run of the
// same copy before patching, from the same registers, flags and stack.
#include <sys/mman.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "abi/saved_registers.h"
#include "arch/x86_64/decoder.h"
#include "arch/x86_64/jump_planner.h"
#include "arch/x86_64/trampoline_writer.h"
#include "arch/x86_64/writer.h"
#include "exec_harness.h"

namespace dprobe::x86_64::testing {

/// What the dispatcher saw; the trampoline's `region` argument points at one of these.
struct HitRecord {
  uint64_t entry_rsp = 0;   ///< rsp at the dispatcher's first instruction (asm shim)
  uint64_t entry_flags = 0; ///< rflags there
  uint32_t probe_id = 0;
  uint32_t hits = 0;
  uint64_t region = 0;
  uint64_t frame_address = 0;
  dprobe::abi::SavedRegisters frame{};
  bool overwrite_r12 = false; ///< write r12_value into the frame, as a probe program might
  uint64_t r12_value = 0;
};
static_assert(offsetof(HitRecord, entry_rsp) == 0 && offsetof(HitRecord, entry_flags) == 8,
              "H_ENTRY_* in trampoline_harness_x86_64.S");

} // namespace dprobe::x86_64::testing

using dprobe::x86_64::testing::HitRecord;

extern "C" {
void dprobe_test_call(dprobe::x86_64::testing::CpuState* state);
void dprobe_test_dispatch(HitRecord* region, uint32_t probe_id, dprobe::abi::SavedRegisters* frame);

void dprobe_test_record_hit(HitRecord* record, uint32_t probe_id,
                            dprobe::abi::SavedRegisters* frame) {
  record->probe_id = probe_id;
  record->hits += 1;
  record->region = reinterpret_cast<uint64_t>(record);
  record->frame_address = reinterpret_cast<uint64_t>(frame);
  record->frame = *frame;
  if (record->overwrite_r12) frame->r12 = record->r12_value;
}

extern const uint8_t tf_entry[], tf_entry_end[];
extern const uint8_t tf_mid[], tf_mid_site[], tf_mid_end[];
extern const uint8_t tf_call[], tf_call_function_end[], tf_call_end[];
extern const uint8_t tf_rip[], tf_rip_function_end[], tf_rip_end[];
}

namespace dprobe::x86_64 {
namespace {

using testing::CpuState;
using testing::kCF;
using testing::kOF;
using testing::kStatusFlags;
using testing::kZF;

constexpr uint64_t kDF = 0x400;
constexpr uint64_t kCompared = kStatusFlags | kDF; // flags that must come back unchanged
constexpr uint32_t kProbeId = 0x1234567;

/// A function copy under test, as the asm defines it.
struct TestFunction {
  const uint8_t* begin;
  const uint8_t* function_end; ///< end of the function's own instructions (its symbol size)
  const uint8_t* end;          ///< end of the bytes to copy (helpers and data included)
};

enum class Dispatch { kNear, kFar };

/// One RWX mapping: the function copy, the trampoline (near it), a near stub jumping to the
/// dispatcher; and a test stack.
class Rig {
 public:
  static constexpr std::size_t kSize = 0x4000;
  static constexpr std::size_t kTrampolineOffset = 0x1000;
  static constexpr std::size_t kStubOffset = 0x3f00;
  static constexpr std::size_t kStackWords = 1024;
  static constexpr std::size_t kTopWord = 768; ///< T for aligned runs

  static std::unique_ptr<Rig> create() {
    for (uint64_t i = 0; i < 16; ++i) {
      auto want = reinterpret_cast<void*>(0x300000000000 + i * 0x1000000000);
      void* p = ::mmap(want, kSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (p == MAP_FAILED) continue;
      if (p != want) {
        ::munmap(p, kSize);
        continue;
      }
      return std::unique_ptr<Rig>(new Rig(static_cast<uint8_t*>(p)));
    }
    return nullptr;
  }
  ~Rig() { ::munmap(base_, kSize); }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  [[nodiscard]] uint64_t code() const { return address(0); }
  [[nodiscard]] uint64_t trampoline() const { return address(kTrampolineOffset); }
  [[nodiscard]] uint64_t dispatch(Dispatch kind) const {
    return kind == Dispatch::kNear ? address(kStubOffset)
                                   : reinterpret_cast<uint64_t>(&dprobe_test_dispatch);
  }
  [[nodiscard]] uint64_t address(std::size_t offset) const {
    return reinterpret_cast<uint64_t>(base_) + offset;
  }
  HitRecord& record() { return record_; }
  [[nodiscard]] uint64_t region() const { return reinterpret_cast<uint64_t>(&record_); }

  /// Copies `fn` at code(); returns its instructions there.
  std::vector<Instruction> place(const TestFunction& fn) {
    std::memcpy(base_, fn.begin, static_cast<std::size_t>(fn.end - fn.begin));
    auto insns = decode_all({base_, static_cast<std::size_t>(fn.function_end - fn.begin)}, code());
    EXPECT_TRUE(insns.has_value()) << insns.error().text();
    return insns.value_or(std::vector<Instruction>{});
  }

  void write(uint64_t at, std::span<const uint8_t> bytes) {
    ASSERT_GE(at, code());
    ASSERT_LE(at + bytes.size(), code() + kSize);
    std::memcpy(base_ + (at - code()), bytes.data(), bytes.size());
  }

  /// rsp of the harness's call: 16-byte aligned (as the ABI wants) or off by 8.
  [[nodiscard]] uint64_t call_rsp(bool aligned) const {
    return reinterpret_cast<uint64_t>(&stack_[kTopWord]) + (aligned ? 0 : 8);
  }
  /// The stack word at call_rsp + offset after the last run.
  [[nodiscard]] uint64_t stack_at(bool aligned, int64_t offset) const {
    uint64_t at = call_rsp(aligned) + static_cast<uint64_t>(offset);
    return stack_[(at - reinterpret_cast<uint64_t>(stack_.data())) / 8];
  }
  static uint64_t pattern(std::size_t word) { return 0x5a5a5a5a00000000 + word; }

  struct Run {
    CpuState regs;
    std::vector<uint64_t> red_zone; ///< the 16 words below the callee's rsp at its entry
    HitRecord record;
  };

  /// Calls `entry` with `init`; `stack_words` are (offset from call_rsp, value) set beforehand.
  Run call(uint64_t entry, CpuState init, bool aligned,
           const std::vector<std::pair<int64_t, uint64_t>>& stack_words = {}) {
    for (std::size_t i = 0; i < stack_.size(); ++i)
      stack_[i] = pattern(i);
    for (const auto& [offset, value] : stack_words) {
      uint64_t at = call_rsp(aligned) + static_cast<uint64_t>(offset);
      stack_[(at - reinterpret_cast<uint64_t>(stack_.data())) / 8] = value;
    }
    record_.hits = 0;
    record_.frame = {};
    init.rsp = call_rsp(aligned);
    init.entry = entry;
    init.rflags = (init.rflags & kCompared) | 0x202;
    dprobe_test_call(&init);
    Run out{init, {}, record_};
    for (int64_t i = 1; i <= 16; ++i)
      out.red_zone.push_back(stack_at(aligned, -8 - 8 * i));
    return out;
  }

 private:
  explicit Rig(uint8_t* base) : base_(base) {
    std::memset(base_, kInt3, kSize);
    CodeWriter stub(address(kStubOffset));
    stub.put_jmp_abs(reinterpret_cast<uint64_t>(&dprobe_test_dispatch));
    std::memcpy(base_ + kStubOffset, stub.code().data(), stub.size());
  }

  uint8_t* base_;
  HitRecord record_;
  alignas(64) std::array<uint64_t, kStackWords> stack_{};
};

CpuState registers(uint64_t rdi, uint64_t rsi, uint64_t rdx, uint64_t flags) {
  CpuState s;
  s.rax = 0x1111111111111111;
  s.rbx = 0x2222222222222222;
  s.rcx = 0x3333333333333333;
  s.rdx = rdx;
  s.rsi = rsi;
  s.rdi = rdi;
  s.rbp = 0x7777777777777777;
  s.r8 = 0x8888888888888888;
  s.r9 = 0x9999999999999999;
  s.r10 = 0xaaaaaaaaaaaaaaaa;
  s.r11 = 0xbbbbbbbbbbbbbbbb;
  s.r12 = 0xcccccccccccccccc;
  s.r13 = 0xdddddddddddddddd;
  s.r14 = 0xeeeeeeeeeeeeeeee;
  s.r15 = 0xf0f0f0f0f0f0f0f0;
  s.rflags = flags;
  return s;
}

void expect_same_state(const CpuState& a, const CpuState& b) {
  EXPECT_EQ(a.rax, b.rax);
  EXPECT_EQ(a.rbx, b.rbx);
  EXPECT_EQ(a.rcx, b.rcx);
  EXPECT_EQ(a.rdx, b.rdx);
  EXPECT_EQ(a.rsi, b.rsi);
  EXPECT_EQ(a.rdi, b.rdi);
  EXPECT_EQ(a.rbp, b.rbp);
  EXPECT_EQ(a.r8, b.r8);
  EXPECT_EQ(a.r9, b.r9);
  EXPECT_EQ(a.r10, b.r10);
  EXPECT_EQ(a.r11, b.r11);
  EXPECT_EQ(a.r12, b.r12);
  EXPECT_EQ(a.r13, b.r13);
  EXPECT_EQ(a.r14, b.r14);
  EXPECT_EQ(a.r15, b.r15);
  EXPECT_EQ(a.rflags & kCompared, b.rflags & kCompared) << std::hex << a.rflags << " " << b.rflags;
  EXPECT_EQ(a.rsp, b.rsp);
}

/// The frame holds exactly `at_site` (the registers when the probed code reached the site); its
/// rflags slot only when the trampoline saves flags (at an entry it is left unwritten).
void expect_frame(const abi::SavedRegisters& f, const CpuState& at_site, bool save_flags = true) {
  EXPECT_EQ(f.rax, at_site.rax);
  EXPECT_EQ(f.rbx, at_site.rbx);
  EXPECT_EQ(f.rcx, at_site.rcx);
  EXPECT_EQ(f.rdx, at_site.rdx);
  EXPECT_EQ(f.rsi, at_site.rsi);
  EXPECT_EQ(f.rdi, at_site.rdi);
  EXPECT_EQ(f.rbp, at_site.rbp);
  EXPECT_EQ(f.r8, at_site.r8);
  EXPECT_EQ(f.r9, at_site.r9);
  EXPECT_EQ(f.r10, at_site.r10);
  EXPECT_EQ(f.r11, at_site.r11);
  EXPECT_EQ(f.r12, at_site.r12);
  EXPECT_EQ(f.r13, at_site.r13);
  EXPECT_EQ(f.r14, at_site.r14);
  EXPECT_EQ(f.r15, at_site.r15);
  if (save_flags) {
    EXPECT_EQ(f.rflags & kCompared, at_site.rflags & kCompared);
  }
}

/// Plans a jump at `site`, writes the trampoline and the patch. Precondition: fn placed.
Trampoline install(Rig& rig, const std::vector<Instruction>& insns, uint64_t function_end,
                   uint64_t site, bool save_flags, Dispatch dispatch) {
  auto plan = plan_jump(insns, rig.code(), function_end, site);
  EXPECT_TRUE(plan.has_value()) << plan.error().text();
  if (!plan) return {};
  TrampolineSpec spec;
  spec.address = rig.trampoline();
  spec.probe_id = kProbeId;
  spec.region = rig.region();
  spec.dispatch = rig.dispatch(dispatch);
  spec.save_flags = save_flags;
  spec.replaced = plan->replaced;
  auto trampoline = write_trampoline(spec);
  EXPECT_TRUE(trampoline.has_value()) << trampoline.error().text();
  if (!trampoline) return {};
  EXPECT_LE(trampoline->code.size(), max_trampoline_size(plan->replaced.size()));
  rig.write(rig.trampoline(), trampoline->code);
  std::vector<uint8_t> patch = encode_jump_patch(*plan, rig.trampoline());
  EXPECT_EQ(patch.size(), plan->length);
  rig.write(site, patch);
  return std::move(*trampoline);
}

/// What every hit must look like: one call, right arguments, frame at the fixed place (the
/// probed code's rsp - 128 - 128), aligned call, DF clear in the dispatcher.
void expect_hit(const HitRecord& hit, const Rig& rig, uint64_t rsp_at_site) {
  EXPECT_EQ(hit.hits, 1u);
  EXPECT_EQ(hit.probe_id, kProbeId);
  EXPECT_EQ(hit.region, rig.region());
  EXPECT_EQ(hit.frame_address, rsp_at_site - kTrampolineRedZone - kTrampolineFrameSize);
  EXPECT_EQ(hit.entry_rsp % 16, 8u) << "rsp was not 16-byte aligned at the call";
  EXPECT_LT(hit.entry_rsp, hit.frame_address);
  EXPECT_EQ(hit.entry_flags & kDF, 0u) << "DF set in the dispatcher";
}

const TestFunction kEntry{tf_entry, tf_entry_end, tf_entry_end};
const TestFunction kMid{tf_mid, tf_mid_end, tf_mid_end};
const TestFunction kCall{tf_call, tf_call_function_end, tf_call_end};
const TestFunction kRip{tf_rip, tf_rip_function_end, tf_rip_end};

uint64_t offset_in(const TestFunction& fn, const uint8_t* label) {
  return static_cast<uint64_t>(label - fn.begin);
}

// --- entry probes ------------------------------------------------------------------------------

struct EntryCase {
  bool save_flags;
  Dispatch dispatch;
  bool aligned;
};

void PrintTo(const EntryCase& c, std::ostream* os) {
  *os << (c.save_flags ? "save_flags " : "no flags ")
      << (c.dispatch == Dispatch::kNear ? "near" : "far") << (c.aligned ? "" : " misaligned");
}

class EntryProbe : public ::testing::TestWithParam<EntryCase> {};

TEST_P(EntryProbe, RunsTheDispatcherAndLeavesTheFunctionUnchanged) {
  const EntryCase c = GetParam();
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kEntry);
  const uint64_t end = rig->code() + offset_in(kEntry, kEntry.function_end);
  const CpuState init = registers(1000, 20, 3, kCF | kZF);

  Rig::Run before = rig->call(rig->code(), init, c.aligned);
  EXPECT_EQ(before.regs.rax, 1000u + 2 * 20 + 3);
  EXPECT_EQ(before.record.hits, 0u);

  Trampoline t = install(*rig, insns, end, rig->code(), c.save_flags, c.dispatch);
  ASSERT_FALSE(t.code.empty());
  Rig::Run after = rig->call(rig->code(), init, c.aligned);
  expect_same_state(after.regs, before.regs);
  EXPECT_EQ(after.red_zone, before.red_zone);
  const uint64_t rsp_at_site = rig->call_rsp(c.aligned) - 8;
  expect_hit(after.record, *rig, rsp_at_site);
  expect_frame(after.record.frame, init, c.save_flags);
}

INSTANTIATE_TEST_SUITE_P(Modes, EntryProbe,
                         ::testing::Values(EntryCase{true, Dispatch::kNear, true},
                                           EntryCase{true, Dispatch::kFar, true},
                                           EntryCase{false, Dispatch::kNear, true},
                                           EntryCase{false, Dispatch::kFar, true},
                                           EntryCase{false, Dispatch::kFar, false},
                                           EntryCase{true, Dispatch::kNear, false}),
                         [](const ::testing::TestParamInfo<EntryCase>& info) {
                           return std::string(info.param.save_flags ? "SaveFlags" : "NoFlags") +
                                  (info.param.dispatch == Dispatch::kNear ? "NearCall"
                                                                          : "FarCall") +
                                  (info.param.aligned ? "" : "Misaligned");
                         });

// --- mid-function probes: red zone and flags live across the probe ----------------------------

struct MidCase {
  uint64_t rdi, rsi;
  bool df;
  bool aligned;
};

void PrintTo(const MidCase& c, std::ostream* os) {
  *os << "rdi=" << c.rdi << " rsi=" << c.rsi << (c.df ? " DF" : "")
      << (c.aligned ? "" : " misaligned");
}

class MidProbe : public ::testing::TestWithParam<MidCase> {};

TEST_P(MidProbe, PreservesRedZoneFlagsAndRegisters) {
  const MidCase c = GetParam();
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kMid);
  const uint64_t end = rig->code() + offset_in(kMid, kMid.function_end);
  const uint64_t site = rig->code() + offset_in(kMid, tf_mid_site);
  const CpuState init = registers(c.rdi, c.rsi, 0x77, c.df ? kDF : 0);

  Rig::Run before = rig->call(rig->code(), init, c.aligned);
  EXPECT_EQ(before.regs.rax, (c.rdi < c.rsi ? 0x77 : c.rdi + c.rsi) + c.rdi);
  EXPECT_EQ(before.regs.r9, c.rsi);
  EXPECT_EQ(before.regs.rflags & kDF, c.df ? kDF : 0);
  EXPECT_EQ(before.regs.rflags & kCF, c.rdi < c.rsi ? kCF : 0);
  const bool overflow = (c.rdi ^ c.rsi) >> 63 != 0 && ((c.rdi - c.rsi) ^ c.rdi) >> 63 != 0;
  EXPECT_EQ(before.regs.rflags & kOF, overflow ? kOF : 0);

  Trampoline t = install(*rig, insns, end, site, /*save_flags=*/true, Dispatch::kNear);
  ASSERT_FALSE(t.code.empty());
  Rig::Run after = rig->call(rig->code(), init, c.aligned);
  expect_same_state(after.regs, before.regs);

  // The red zone of tf_mid: its two stores, the pattern everywhere else.
  ASSERT_EQ(after.red_zone, before.red_zone);
  for (std::size_t i = 0; i < 16; ++i) {
    uint64_t word = after.red_zone[i];
    if (i == 0) {
      EXPECT_EQ(word, c.rdi);
    } else if (i == 15) {
      EXPECT_EQ(word, c.rsi);
    } else {
      EXPECT_EQ(word >> 32, 0x5a5a5a5au) << "red zone word " << i << " overwritten";
    }
  }

  expect_hit(after.record, *rig, rig->call_rsp(c.aligned) - 8);
  CpuState at_site = init;
  at_site.rflags = before.regs.rflags; // nothing after the cmp changes the flags
  expect_frame(after.record.frame, at_site);
}

INSTANTIATE_TEST_SUITE_P(Inputs, MidProbe,
                         ::testing::Values(MidCase{5, 9, false, true}, MidCase{9, 5, false, true},
                                           MidCase{7, 7, true, true}, MidCase{3, 8, true, false},
                                           MidCase{8, 3, false, false},
                                           // signed overflow: OF (with CF SF, then alone)
                                           MidCase{1, 0x8000000000000000, true, true},
                                           MidCase{0x8000000000000000, 1, false, false}));

TEST(MidProbeFlags, WithoutSavedFlagsTheDispatchersFlagsLeak) {
  // Why save_flags exists: the shim returns with CF ZF SF OF set, and they reach the caller.
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kMid);
  const uint64_t end = rig->code() + offset_in(kMid, kMid.function_end);
  const uint64_t site = rig->code() + offset_in(kMid, tf_mid_site);
  const CpuState init = registers(9, 5, 0x77, 0);
  Rig::Run before = rig->call(rig->code(), init, true);
  EXPECT_EQ(before.regs.rflags & kStatusFlags, 0u); // 9 - 5 = 4: no flag (odd parity)
  EXPECT_EQ(before.regs.rax, 9u + 5 + 9);

  Trampoline t = install(*rig, insns, end, site, /*save_flags=*/false, Dispatch::kNear);
  ASSERT_FALSE(t.code.empty());
  Rig::Run after = rig->call(rig->code(), init, true);
  EXPECT_EQ(after.regs.rflags & kStatusFlags, 0x8d5u);
  EXPECT_EQ(after.regs.rax, 0x77u + 9) << "cmovb took the dispatcher's CF";
}

TEST(MidProbeFrame, FrameWritesReachTheProbedCode) {
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kMid);
  const uint64_t end = rig->code() + offset_in(kMid, kMid.function_end);
  const uint64_t site = rig->code() + offset_in(kMid, tf_mid_site);
  Trampoline t = install(*rig, insns, end, site, true, Dispatch::kFar);
  ASSERT_FALSE(t.code.empty());
  rig->record().overwrite_r12 = true;
  rig->record().r12_value = 0x0123456789abcdef;
  Rig::Run after = rig->call(rig->code(), registers(1, 2, 3, 0), true);
  EXPECT_EQ(after.regs.r12, 0x0123456789abcdefu);
  EXPECT_EQ(after.regs.r13, 0xddddddddddddddddu);
}

TEST(MidProbeMove, ThreadMovedIntoTheCopyContinuesThere) {
  // A thread stopped after the lea, before the mov: once the jmp is written it must continue at
  // the copy of the mov. Simulated by entering there with the state it would have.
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kMid);
  const uint64_t end = rig->code() + offset_in(kMid, kMid.function_end);
  const uint64_t site = rig->code() + offset_in(kMid, tf_mid_site);
  const uint64_t stopped = site + 4;          // mov rcx, rdx
  CpuState init = registers(3, 8, 0x77, kCF); // cmp 3, 8 sets CF
  init.rax = 3 + 8;
  const std::vector<std::pair<int64_t, uint64_t>> red_zone = {{-16, 3}, {-136, 8}};
  Rig::Run before = rig->call(stopped, init, true, red_zone);
  EXPECT_EQ(before.regs.rax, 0x77u + 3);

  Trampoline t = install(*rig, insns, end, site, true, Dispatch::kNear);
  ASSERT_FALSE(t.code.empty());
  ASSERT_EQ(t.address_map.size(), 2u);
  EXPECT_EQ(t.address_map[0], std::make_pair(site, t.relocated_start));
  EXPECT_EQ(t.address_map[1], std::make_pair(stopped, t.relocated_start + 4));
  auto moved = relocated_pc(t, stopped, false);
  ASSERT_TRUE(moved.has_value()) << moved.error().text();
  ASSERT_TRUE(moved->has_value());
  EXPECT_EQ(**moved, t.relocated_start + 4);

  Rig::Run after = rig->call(**moved, init, true, red_zone);
  expect_same_state(after.regs, before.regs);
  EXPECT_EQ(after.record.hits, 0u);
}

// --- relocation inside the trampoline ----------------------------------------------------------

TEST(TrampolineRelocation, CallLastKeepsTheOriginalReturnAddress) {
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kCall);
  const uint64_t end = rig->code() + offset_in(kCall, kCall.function_end);
  const CpuState init = registers(7, 0, 0, 0);
  Rig::Run before = rig->call(rig->code(), init, true);
  EXPECT_EQ(before.regs.rax & 0xffffffff, 28u);
  EXPECT_EQ(before.regs.rdx, rig->code() + 8); // return address: after push; mov; call

  Trampoline t = install(*rig, insns, end, rig->code(), false, Dispatch::kNear);
  ASSERT_FALSE(t.code.empty());
  ASSERT_EQ(t.address_map.size(), 3u);
  Rig::Run after = rig->call(rig->code(), init, true);
  expect_same_state(after.regs, before.regs);
  expect_hit(after.record, *rig, rig->call_rsp(true) - 8);
}

TEST(TrampolineRelocation, RipRelativeOperandStillReadsTheOriginal) {
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kRip);
  const uint64_t end = rig->code() + offset_in(kRip, kRip.function_end);
  const CpuState init = registers(0x10, 0, 0, 0);
  Rig::Run before = rig->call(rig->code(), init, true);
  EXPECT_EQ(before.regs.rax & 0xffffffff, 0x12355u);

  Trampoline t = install(*rig, insns, end, rig->code(), false, Dispatch::kFar);
  ASSERT_FALSE(t.code.empty());
  Rig::Run after = rig->call(rig->code(), init, true);
  expect_same_state(after.regs, before.regs);
  EXPECT_EQ(after.record.hits, 1u);
}

TEST(TrampolineRelocation, EveryCallHits) {
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kEntry);
  const uint64_t end = rig->code() + offset_in(kEntry, kEntry.function_end);
  Trampoline t = install(*rig, insns, end, rig->code(), false, Dispatch::kNear);
  ASSERT_FALSE(t.code.empty());
  for (uint64_t i = 0; i < 3; ++i) {
    Rig::Run run = rig->call(rig->code(), registers(i, i, i, 0), true);
    EXPECT_EQ(run.regs.rax, 4 * i);
    EXPECT_EQ(run.record.hits, 1u);
    EXPECT_EQ(run.record.frame.rdi, i);
  }
}

} // namespace
} // namespace dprobe::x86_64

// --- jumps on exits (return probes) ------------------------------------------------------------

namespace dprobe::x86_64 {
namespace {

/// Installs a jump for a probe on the exit at `exit_site`, made of the instructions before it.
Trampoline install_exit(Rig& rig, const std::vector<Instruction>& insns, uint64_t function_end,
                        uint64_t exit_site, JumpPlan& plan_out) {
  auto plan = plan_jump_to_exit(insns, rig.code(), function_end, exit_site);
  EXPECT_TRUE(plan.has_value()) << plan.error().text();
  if (!plan) return {};
  TrampolineSpec spec;
  spec.address = rig.trampoline();
  spec.probe_id = kProbeId;
  spec.region = rig.region();
  spec.dispatch = rig.dispatch(Dispatch::kNear);
  spec.replaced = plan->replaced;
  spec.run_before = plan->run_before;
  auto trampoline = write_trampoline(spec);
  EXPECT_TRUE(trampoline.has_value()) << trampoline.error().text();
  if (!trampoline) return {};
  EXPECT_LE(trampoline->code.size(), max_trampoline_size(plan->replaced.size()));
  rig.write(rig.trampoline(), trampoline->code);
  rig.write(plan->replaced.front().address, encode_jump_patch(*plan, rig.trampoline()));
  plan_out = *plan;
  return std::move(*trampoline);
}

TEST(ExitProbe, InstructionsBeforeTheRetRunFirstThenTheProbeSeesTheReturnValue) {
  // tf_mid ends `lea rax, [rax + r8]` (4 bytes); `ret`: the jump replaces both, the lea runs
  // in the trampoline before the dispatcher, which then sees rax = the return value.
  auto rig = Rig::create();
  ASSERT_NE(rig, nullptr);
  std::vector<Instruction> insns = rig->place(kMid);
  const uint64_t end = rig->code() + offset_in(kMid, kMid.function_end);
  const uint64_t ret = end - 1;
  ASSERT_EQ(insns.back().text, "ret");
  const CpuState init = registers(9, 5, 0x77, 0);
  Rig::Run before = rig->call(rig->code(), init, true);
  EXPECT_EQ(before.regs.rax, 9u + 5 + 9);

  JumpPlan plan;
  Trampoline t = install_exit(*rig, insns, end, ret, plan);
  ASSERT_FALSE(t.code.empty());
  EXPECT_EQ(plan.run_before, 1u);
  EXPECT_EQ(plan.replaced.front().text, "lea rax, [rax+r8*1]");
  Rig::Run after = rig->call(rig->code(), init, true);
  expect_same_state(after.regs, before.regs);
  ASSERT_EQ(after.red_zone, before.red_zone);
  // At the probe: rsp is the ret's (the return address on top), rax the value returned.
  expect_hit(after.record, *rig, rig->call_rsp(true) - 8);
  EXPECT_EQ(after.record.frame.rax, before.regs.rax);
  EXPECT_EQ(after.record.frame.r9, 5u);

  // A thread stopped at the lea continues at its copy; one stopped at the ret goes through the
  // dispatcher (its hit still counts), then returns.
  const uint64_t lea = plan.replaced.front().address;
  auto at_lea = relocated_pc(t, lea, false);
  ASSERT_TRUE(at_lea.has_value());
  EXPECT_FALSE(at_lea->has_value()) << "the first byte takes the jump";
  auto at_ret = relocated_pc(t, ret, false);
  ASSERT_TRUE(at_ret.has_value()) << at_ret.error().text();
  ASSERT_TRUE(at_ret->has_value());
  EXPECT_EQ(t.address_map.size(), 2u);
  EXPECT_EQ(t.address_map[0], std::make_pair(lea, rig->trampoline()));
  EXPECT_EQ(t.address_map[1].first, ret);
  EXPECT_EQ(**at_ret, t.address_map[1].second);
}

} // namespace
} // namespace dprobe::x86_64
