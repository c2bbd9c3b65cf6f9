// Runs original instructions and their relocated copies for real, from the same register, flag,
// stack and memory state, and requires identical outcomes — at three slot distances: near,
// at the edge of rel32 reach (B = A - 0x7fff0000), and out of reach (B = A + 4 GiB).
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/relocator.h"
#include "exec_harness.h"

namespace dprobe::x86_64 {
namespace {

using testing::CpuState;
using testing::ExecHarness;
using testing::kCF;
using testing::kOF;
using testing::kSF;
using testing::kStatusFlags;
using testing::kZF;
using testing::Landing;
using testing::RunResult;

struct Distance {
  const char* name;
  int64_t bytes;
  bool rip_reachable; // can a RIP-relative operand of A still be reached from B?
};

void PrintTo(const Distance& d, std::ostream* os) {
  *os << d.name;
}

const Distance kDistances[] = {
    {"Near", 0x10000, true},
    {"Rel32Edge", -0x7fff0000, true},
    {"Beyond4GiB", 0x100000000, false},
};

/// Assembles code that will live at `base`, with helpers for relative fields.
class Asm {
 public:
  explicit Asm(uint64_t base) : base_(base) {}
  Asm& b(std::initializer_list<uint8_t> bytes) {
    bytes_.insert(bytes_.end(), bytes);
    return *this;
  }
  /// rel8 ending the instruction, aimed at `target`.
  Asm& rel8(uint64_t target) {
    auto rel = static_cast<int64_t>(target - (pc() + 1));
    EXPECT_TRUE(rel >= -128 && rel <= 127) << "test bug: rel8 out of range";
    bytes_.push_back(static_cast<uint8_t>(rel));
    return *this;
  }
  /// rel32 / RIP-relative disp32 aimed at `target`; `trailing` immediate bytes follow it.
  Asm& rel32(uint64_t target, std::size_t trailing = 0) {
    auto rel = static_cast<uint32_t>(target - (pc() + 4 + trailing));
    for (int i = 0; i < 4; ++i)
      bytes_.push_back(static_cast<uint8_t>(rel >> (8 * i)));
    return *this;
  }
  [[nodiscard]] uint64_t pc() const { return base_ + bytes_.size(); }
  [[nodiscard]] const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  uint64_t base_;
  std::vector<uint8_t> bytes_;
};

struct Named {
  const char* name;
  uint64_t CpuState::*member;
};
constexpr Named kRegisters[] = {
    {"rax", &CpuState::rax}, {"rbx", &CpuState::rbx}, {"rcx", &CpuState::rcx},
    {"rdx", &CpuState::rdx}, {"rsi", &CpuState::rsi}, {"rdi", &CpuState::rdi},
    {"rbp", &CpuState::rbp}, {"r8", &CpuState::r8},   {"r9", &CpuState::r9},
    {"r10", &CpuState::r10}, {"r11", &CpuState::r11}, {"r12", &CpuState::r12},
    {"r13", &CpuState::r13}, {"r14", &CpuState::r14}, {"r15", &CpuState::r15},
};

void expect_same(const RunResult& original, const RunResult& copy) {
  EXPECT_EQ(copy.landing, original.landing) << "landing stub";
  for (const Named& reg : kRegisters) {
    EXPECT_EQ(copy.regs.*reg.member, original.regs.*reg.member) << reg.name;
  }
  EXPECT_EQ(copy.regs.rflags & kStatusFlags, original.regs.rflags & kStatusFlags) << "flags";
  EXPECT_EQ(copy.rsp, original.rsp) << "rsp";
  EXPECT_EQ(copy.stack, original.stack) << "live stack";
  EXPECT_EQ(copy.data, original.data) << "data memory";
}

class RelocatorExec : public ::testing::TestWithParam<Distance> {
 protected:
  void SetUp() override {
    auto harness = ExecHarness::create(GetParam().bytes);
    ASSERT_TRUE(harness.has_value()) << harness.error().text();
    h_ = std::move(*harness);
    // A recognisable data area: qword i is 0x0101010101010101 * (i + 1).
    for (std::size_t i = 0; i < 8; ++i)
      h_->set_data_qword(i * 8, 0x0101010101010101 * (i + 1));
  }

  uint64_t a() const { return h_->original(); }
  Asm at_a() const { return Asm(a()); }
  bool rip_reachable() const { return GetParam().rip_reachable; }

  /// Places `code` at A, relocates it to B (one instruction, or a block), runs both from
  /// `init` and compares. Returns the original's result, or nullopt if relocation was refused
  /// as expected for `uses_rip` code out of reach.
  std::optional<RunResult> check(const std::vector<uint8_t>& code, CpuState init, Landing expected,
                                 bool uses_rip = false, bool block = false) {
    h_->place_original(code);
    auto insns = decode_all(code, a());
    EXPECT_TRUE(insns.has_value()) << insns.error().text();
    if (!insns) return std::nullopt;
    SCOPED_TRACE(insns->front().text);
    Result<RelocatedCode> relocated =
        block ? relocate_block(*insns, h_->slot()) : relocate(insns->front(), h_->slot());
    if (!block) {
      EXPECT_EQ(insns->size(), 1u) << "test bug: one instruction expected";
    }
    if (uses_rip && !rip_reachable()) {
      EXPECT_FALSE(relocated.has_value());
      if (!relocated) {
        EXPECT_NE(relocated.error().message.find("out of ±2 GiB reach"), std::string::npos)
            << relocated.error().message;
      }
      return std::nullopt;
    }
    EXPECT_TRUE(relocated.has_value()) << relocated.error().text();
    if (!relocated) return std::nullopt;
    h_->place_relocated(relocated->code);

    RunResult original = h_->run(a(), init);
    RunResult copy = h_->run(h_->slot(), init);
    EXPECT_EQ(original.landing, expected) << "test bug: the original did not land where expected";
    expect_same(original, copy);
    return original;
  }

  uint64_t data_qword(const RunResult& r, std::size_t offset) const {
    uint64_t v = 0;
    std::memcpy(&v, r.data.data() + offset, sizeof(v));
    return v;
  }

  std::unique_ptr<ExecHarness> h_;
};

// ---- RIP-relative operands --------------------------------------------------------------------

TEST_P(RelocatorExec, RipRelativeLoad) {
  // mov rax, qword ptr [rip+data+8]
  auto code = at_a().b({0x48, 0x8b, 0x05}).rel32(h_->data() + 8).bytes();
  auto r = check(code, {}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(r->regs.rax, 0x0202020202020202u);
  }
}

TEST_P(RelocatorExec, RipRelativeStore) {
  // mov qword ptr [rip+data+16], rbx
  auto code = at_a().b({0x48, 0x89, 0x1d}).rel32(h_->data() + 16).bytes();
  auto r = check(code, {.rbx = 0x1122334455667788}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(data_qword(*r, 16), 0x1122334455667788u);
  }
}

TEST_P(RelocatorExec, RipRelativeLea) {
  // lea rsi, [rip+data]
  auto code = at_a().b({0x48, 0x8d, 0x35}).rel32(h_->data()).bytes();
  auto r = check(code, {}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(r->regs.rsi, h_->data());
  }
}

TEST_P(RelocatorExec, RipRelativeReadModifyWriteWithImmediate) {
  // add dword ptr [rip+data+24], 0x7f  (the disp32 is followed by an imm8)
  auto code = at_a().b({0x83, 0x05}).rel32(h_->data() + 24, 1).b({0x7f}).bytes();
  auto r = check(code, {}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(data_qword(*r, 24), 0x0404040404040404u + 0x7f);
  }
}

TEST_P(RelocatorExec, RipRelativeCompareSetsFlags) {
  // cmp qword ptr [rip+data], rax
  auto code = at_a().b({0x48, 0x39, 0x05}).rel32(h_->data()).bytes();
  auto r = check(code, {.rax = 0x0101010101010101}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(r->regs.rflags & kZF, kZF);
  }
}

TEST_P(RelocatorExec, RipRelativePush) {
  // push qword ptr [rip+data+32]
  auto code = at_a().b({0xff, 0x35}).rel32(h_->data() + 32).bytes();
  auto r = check(code, {}, testing::kFallThrough, true);
  if (r) {
    EXPECT_EQ(r->rsp, h_->initial_rsp() - 8);
    EXPECT_EQ(r->stack.front(), 0x0505050505050505u);
  }
}

TEST_P(RelocatorExec, RipRelativeIndirectJmp) {
  // jmp qword ptr [rip+data+40]  -> taken stub
  h_->set_data_qword(40, h_->taken(), /*is_code_pointer=*/true);
  auto code = at_a().b({0xff, 0x25}).rel32(h_->data() + 40).bytes();
  check(code, {}, testing::kTaken, true);
}

// ---- calls: the pushed return address must be the original's ---------------------------------

void expect_called_from(const RunResult& r, uint64_t return_address, uint64_t initial_rsp) {
  EXPECT_EQ(r.rsp, initial_rsp - 8);
  ASSERT_FALSE(r.stack.empty());
  EXPECT_EQ(r.stack.front(), return_address) << "return address seen by the callee";
}

TEST_P(RelocatorExec, CallRel32) {
  auto code = at_a().b({0xe8}).rel32(h_->callee()).bytes(); // call callee
  auto r = check(code, {}, testing::kCallee);
  if (r) {
    expect_called_from(*r, a() + 5, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallRipIndirect) {
  h_->set_data_qword(48, h_->callee(), /*is_code_pointer=*/true);
  auto code = at_a().b({0xff, 0x15}).rel32(h_->data() + 48).bytes(); // call [rip+data+48]
  auto r = check(code, {}, testing::kCallee, true);
  if (r) {
    expect_called_from(*r, a() + 6, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallRax) {
  auto r = check({0xff, 0xd0}, {.rax = h_->callee()}, testing::kCallee); // call rax
  if (r) {
    expect_called_from(*r, a() + 2, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallR11) {
  auto r = check({0x41, 0xff, 0xd3}, {.r11 = h_->callee()}, testing::kCallee); // call r11
  if (r) {
    expect_called_from(*r, a() + 3, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallThroughMemoryIndexed) {
  // call qword ptr [rbx+rcx*8+0x10]
  h_->set_data_qword(56, h_->callee(), /*is_code_pointer=*/true);
  auto r = check({0xff, 0x54, 0xcb, 0x10}, {.rbx = h_->data() + 56 - 0x10 - 8 * 3, .rcx = 3},
                 testing::kCallee);
  if (r) {
    expect_called_from(*r, a() + 4, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallThroughRsp) {
  // call qword ptr [rsp]: the emulation pushes first and must read [rsp+8] instead.
  h_->set_stack_words({h_->callee()});
  auto r = check({0xff, 0x14, 0x24}, {}, testing::kCallee);
  if (r) {
    expect_called_from(*r, a() + 3, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallThroughRspDisp8) {
  // call qword ptr [rsp+8]
  h_->set_stack_words({h_->decoy(), h_->callee(), h_->decoy()});
  auto r = check({0xff, 0x54, 0x24, 0x08}, {}, testing::kCallee);
  if (r) {
    expect_called_from(*r, a() + 4, h_->initial_rsp());
  }
}

TEST_P(RelocatorExec, CallThroughRspDisp8NeedingDisp32) {
  // call qword ptr [rsp+0x78]: +8 no longer fits a disp8.
  std::vector<uint64_t> words(17, h_->decoy());
  words[15] = h_->callee();
  h_->set_stack_words(words);
  auto r = check({0xff, 0x54, 0x24, 0x78}, {}, testing::kCallee);
  if (r) {
    expect_called_from(*r, a() + 4, h_->initial_rsp());
  }
}

// ---- jumps --------------------------------------------------------------------------------------

TEST_P(RelocatorExec, JmpRel8) {
  check(at_a().b({0xeb}).rel8(h_->taken()).bytes(), {}, testing::kTaken);
}

TEST_P(RelocatorExec, JmpRel32) {
  check(at_a().b({0xe9}).rel32(h_->taken()).bytes(), {}, testing::kTaken);
}

struct JccCase {
  const char* name;
  uint8_t cc;
  uint64_t taken_flags;
  uint64_t not_taken_flags;
};

const JccCase kJccCases[] = {
    {"je", 0x4, kZF, 0}, {"jne", 0x5, 0, kZF}, {"jl", 0xc, kSF, kSF | kOF},
    {"jg", 0xf, 0, kZF}, {"jb", 0x2, kCF, 0},  {"jo", 0x0, kOF, 0},
};

TEST_P(RelocatorExec, JccRel8TakenAndNotTaken) {
  for (const JccCase& c : kJccCases) {
    SCOPED_TRACE(c.name);
    auto code = at_a().b({static_cast<uint8_t>(0x70 | c.cc)}).rel8(h_->taken()).bytes();
    check(code, {.rflags = c.taken_flags}, testing::kTaken);
    check(code, {.rflags = c.not_taken_flags}, testing::kFallThrough);
  }
}

TEST_P(RelocatorExec, JccRel32TakenAndNotTaken) {
  for (const JccCase& c : kJccCases) {
    SCOPED_TRACE(c.name);
    auto code = at_a().b({0x0f, static_cast<uint8_t>(0x80 | c.cc)}).rel32(h_->taken()).bytes();
    check(code, {.rflags = c.taken_flags}, testing::kTaken);
    check(code, {.rflags = c.not_taken_flags}, testing::kFallThrough);
  }
}

// ---- loop / jrcxz: rel8 only, both outcomes ---------------------------------------------------

TEST_P(RelocatorExec, Loop) {
  auto code = at_a().b({0xe2}).rel8(h_->taken()).bytes(); // loop taken
  auto r = check(code, {.rcx = 5}, testing::kTaken);
  if (r) {
    EXPECT_EQ(r->regs.rcx, 4u);
  }
  r = check(code, {.rcx = 1}, testing::kFallThrough);
  if (r) {
    EXPECT_EQ(r->regs.rcx, 0u);
  }
}

TEST_P(RelocatorExec, LoopeAndLoopne) {
  auto loope = at_a().b({0xe1}).rel8(h_->taken()).bytes();
  check(loope, {.rcx = 5, .rflags = kZF}, testing::kTaken);
  check(loope, {.rcx = 5, .rflags = 0}, testing::kFallThrough);
  auto loopne = at_a().b({0xe0}).rel8(h_->taken()).bytes();
  check(loopne, {.rcx = 5, .rflags = 0}, testing::kTaken);
  check(loopne, {.rcx = 5, .rflags = kZF}, testing::kFallThrough);
}

TEST_P(RelocatorExec, Jrcxz) {
  auto code = at_a().b({0xe3}).rel8(h_->taken()).bytes();
  check(code, {.rcx = 0}, testing::kTaken);
  check(code, {.rcx = 7}, testing::kFallThrough);
}

TEST_P(RelocatorExec, JecxzLooksAtEcxOnly) {
  auto code = at_a().b({0x67, 0xe3}).rel8(h_->taken()).bytes();
  check(code, {.rcx = 0x100000000}, testing::kTaken);
  check(code, {.rcx = 0x100000001}, testing::kFallThrough);
}

// ---- verbatim and fixed-up others -------------------------------------------------------------

TEST_P(RelocatorExec, VerbatimAdd) {
  // add rax, rbx: carry out and zero result
  auto r = check({0x48, 0x01, 0xd8}, {.rax = ~0ull, .rbx = 1}, testing::kFallThrough);
  if (r) {
    EXPECT_EQ(r->regs.rax, 0u);
    EXPECT_EQ(r->regs.rflags & (kCF | kZF), kCF | kZF);
  }
}

TEST_P(RelocatorExec, VerbatimPushPop) {
  // push rbx; in a block with pop rcx
  check({0x53, 0x59}, {.rbx = 0xabcdef}, testing::kFallThrough, false, /*block=*/true);
}

TEST_P(RelocatorExec, SyscallLeavesTheOriginalReturnAddressInRcx) {
  // syscall (getpid): the kernel puts the next RIP in rcx and rflags in r11.
  auto r = check({0x0f, 0x05}, {.rax = 39}, testing::kFallThrough);
  if (r) {
    EXPECT_EQ(r->regs.rax, static_cast<uint64_t>(::getpid()));
    EXPECT_EQ(r->regs.rcx, a() + 2);
  }
}

// ---- blocks (jump-optimized probes) -----------------------------------------------------------

TEST_P(RelocatorExec, BlockLoadAddTestBranch) {
  // mov eax, dword ptr [rip+data]; add eax, ebx; test eax, eax; jne taken
  Asm code = at_a();
  code.b({0x8b, 0x05}).rel32(h_->data());
  code.b({0x01, 0xd8});
  code.b({0x85, 0xc0});
  code.b({0x75}).rel8(h_->taken());
  // data dword 0 is 0x01010101
  check(code.bytes(), {.rbx = static_cast<uint64_t>(-0x01010101) & 0xffffffff},
        testing::kFallThrough, true, true);
  check(code.bytes(), {.rbx = 1}, testing::kTaken, true, true);
}

TEST_P(RelocatorExec, BlockWithInternalBranchEndingInCall) {
  // test ecx, ecx; je +3 (over the add, stays inside the block); add eax, 1;
  // lea rdx, [rip+data]; call callee
  Asm code = at_a();
  code.b({0x85, 0xc9});
  code.b({0x74, 0x03});
  code.b({0x83, 0xc0, 0x01});
  code.b({0x48, 0x8d, 0x15}).rel32(h_->data());
  code.b({0xe8}).rel32(h_->callee());
  for (uint64_t rcx : {0, 1}) {
    auto r = check(code.bytes(), {.rax = 10, .rcx = rcx}, testing::kCallee, true, true);
    if (r) {
      EXPECT_EQ(r->regs.rax, rcx == 0 ? 10u : 11u);
      expect_called_from(*r, a() + code.bytes().size(), h_->initial_rsp());
    }
  }
}

TEST_P(RelocatorExec, BlockWithLoopToInternalAndExternalTargets) {
  // inc rax; loop back to "inc rax" (inside the block); jrcxz taken (outside)
  Asm code = at_a();
  code.b({0x48, 0xff, 0xc0}); // inc rax
  uint64_t second = code.pc();
  code.b({0x48, 0x83, 0xc3, 0x02}); // add rbx, 2   <- loop target
  code.b({0xe2}).rel8(second);      // loop second
  code.b({0xe3}).rel8(h_->taken()); // jrcxz taken
  auto r = check(code.bytes(), {.rcx = 4}, testing::kTaken, false, true);
  if (r) {
    EXPECT_EQ(r->regs.rax, 1u);
    EXPECT_EQ(r->regs.rbx, 8u);
  }
}

TEST_P(RelocatorExec, BlockWithoutRipOperands) {
  // xor eax, eax; cmp rdi, rsi; setl al; jmp taken
  Asm code = at_a();
  code.b({0x31, 0xc0});
  code.b({0x48, 0x39, 0xf7});
  code.b({0x0f, 0x9c, 0xc0});
  code.b({0xe9}).rel32(h_->taken());
  auto r = check(code.bytes(), {.rsi = 5, .rdi = 3}, testing::kTaken, false, true);
  if (r) {
    EXPECT_EQ(r->regs.rax, 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Distances, RelocatorExec, ::testing::ValuesIn(kDistances),
                         [](const ::testing::TestParamInfo<Distance>& info) {
                           return std::string(info.param.name);
                         });

} // namespace
} // namespace dprobe::x86_64
