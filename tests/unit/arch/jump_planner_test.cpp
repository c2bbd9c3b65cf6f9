// plan_jump: which instructions a jmp rel32 may overwrite, and the refusals, on real encodings.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/jump_planner.h"

namespace dprobe::x86_64 {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kStart = 0x401000;

std::vector<Instruction> sweep(const Bytes& code, uint64_t at = kStart) {
  auto insns = decode_all(code, at);
  EXPECT_TRUE(insns.has_value()) << insns.error().text();
  return insns.value_or(std::vector<Instruction>{});
}

/// Plans at `site` in the function made of `code` at kStart.
Result<JumpPlan> plan(const Bytes& code, uint64_t site = kStart, const Bytes& other = {},
                      uint64_t other_at = 0) {
  std::vector<Instruction> cold =
      other.empty() ? std::vector<Instruction>{} : sweep(other, other_at);
  return plan_jump(sweep(code), kStart, kStart + code.size(), site, cold);
}

std::string refusal(const Result<JumpPlan>& p) {
  EXPECT_FALSE(p.has_value());
  return p.has_value() ? std::string("(accepted)") : p.error().message;
}

const Bytes kPrologue = {
    0x55,                         // 0: push rbp
    0x48, 0x89, 0xe5,             // 1: mov rbp, rsp
    0x48, 0x83, 0xec, 0x10,       // 4: sub rsp, 0x10
    0xb8, 0x01, 0x00, 0x00, 0x00, // 8: mov eax, 1
    0xc9,                         // d: leave
    0xc3,                         // e: ret
};

TEST(JumpPlanner, NormalPrologueIsAccepted) {
  auto p = plan(kPrologue);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  ASSERT_EQ(p->replaced.size(), 3u);
  EXPECT_EQ(p->replaced[0].address, kStart);
  EXPECT_EQ(p->replaced[0].text, "push rbp");
  EXPECT_EQ(p->replaced[1].address, kStart + 1);
  EXPECT_EQ(p->replaced[1].text, "mov rbp, rsp");
  EXPECT_EQ(p->replaced[2].address, kStart + 4);
  EXPECT_EQ(p->replaced[2].text, "sub rsp, 0x10");
  EXPECT_EQ(p->length, 8u);
  EXPECT_TRUE(p->at_function_entry);
}

TEST(JumpPlanner, MidFunctionSite) {
  // mov eax, 1 alone covers 5 bytes.
  auto p = plan(kPrologue, kStart + 8);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  ASSERT_EQ(p->replaced.size(), 1u);
  EXPECT_EQ(p->replaced[0].text, "mov eax, 0x01");
  EXPECT_EQ(p->length, 5u);
  EXPECT_FALSE(p->at_function_entry);
}

TEST(JumpPlanner, ShortFunctionIsRefused) {
  // xor eax, eax; ret
  EXPECT_EQ(refusal(plan({0x31, 0xc0, 0xc3})), "jump refused: function is 3 bytes, a jump needs 5");
}

TEST(JumpPlanner, TooCloseToTheEndIsRefused) {
  // push rbp; mov rbp, rsp; pop rbp; ret — probe at the pop
  EXPECT_EQ(refusal(plan({0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3}, kStart + 4)),
            "jump refused: 2 bytes from the probe (0x401004) to the function's end, a jump "
            "needs 5");
}

TEST(JumpPlanner, FlowEndingBeforeFiveBytesIsRefused) {
  // xor eax, eax; ret; then 4 bytes the symbol covers but no flow reaches (padding, data, ...)
  EXPECT_EQ(refusal(plan({0x31, 0xc0, 0xc3, 0x90, 0x90, 0x90, 0x90})),
            "jump refused: 'ret' at 0x401002 ends the flow after 3 bytes, a jump needs 5");
  // nop; jmp short: the same for a jump
  EXPECT_EQ(refusal(plan({0x90, 0xeb, 0x10, 0x90, 0x90, 0x90})),
            "jump refused: 'jmp 0x401013' at 0x401001 ends the flow after 3 bytes, a jump needs 5");
}

TEST(JumpPlanner, FlowEndingAtFiveBytesIsAccepted) {
  // jmp rel32 (a tail call) is exactly 5 bytes.
  auto p = plan({0xe9, 0xfb, 0x0f, 0x00, 0x00});
  ASSERT_TRUE(p.has_value()) << p.error().text();
  ASSERT_EQ(p->replaced.size(), 1u);
  EXPECT_EQ(p->replaced[0].text, "jmp 0x402000");
}

TEST(JumpPlanner, LoopBranchingIntoTheReplacedBytesIsRefused) {
  const Bytes jnz = {
      0x55,             // 0: push rbp
      0x48, 0x89, 0xe5, // 1: mov rbp, rsp
      0xff, 0xcf,       // 4: dec edi
      0x75, 0xf9,       // 6: jnz 1 (into the 6 replaced bytes)
      0x5d,             // 8: pop rbp
      0xc3,             // 9: ret
  };
  EXPECT_EQ(refusal(plan(jnz)),
            "jump refused: 'jnz 0x401001' at 0x401006 branches into the replaced bytes (0x401001)");
  const Bytes loop = {
      0x31, 0xc0, // 0: xor eax, eax
      0xff, 0xc0, // 2: inc eax
      0x01, 0xf8, // 4: add eax, edi
      0xe2, 0xfa, // 6: loop 2
      0xc3,       // 8: ret
  };
  EXPECT_EQ(
      refusal(plan(loop)),
      "jump refused: 'loop 0x401002' at 0x401006 branches into the replaced bytes (0x401002)");
}

TEST(JumpPlanner, BranchToTheSiteOrTheEndIsAccepted) {
  const Bytes code = {
      0x31, 0xc0, // 0: xor eax, eax
      0x01, 0xf8, // 2: add eax, edi
      0xff, 0xcf, // 4: dec edi
      0x75, 0xf8, // 6: jnz 0 (the site: it takes the jump again, as the original would)
      0x75, 0xfc, // 8: jnz 6 (the end of the replaced bytes)
      0xc3,       // a: ret
  };
  auto p = plan(code);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  EXPECT_EQ(p->length, 6u);
  // From the add, without the second jnz: the first is replaced itself, and relocated.
  Bytes one_jnz(code.begin(), code.begin() + 8);
  one_jnz.push_back(0xc3);
  auto mid = plan(one_jnz, kStart + 2);
  ASSERT_TRUE(mid.has_value()) << mid.error().text();
  EXPECT_EQ(mid->replaced.size(), 3u);
  EXPECT_EQ(mid->length, 6u);
}

TEST(JumpPlanner, BranchInsideTheReplacedBytesIsAccepted) {
  // test eax, eax; je 4; xor eax, eax; ret — the je is relocated with its target.
  auto p = plan({0x85, 0xc0, 0x74, 0x00, 0x31, 0xc0, 0xc3});
  ASSERT_TRUE(p.has_value()) << p.error().text();
  EXPECT_EQ(p->replaced.size(), 3u);
  EXPECT_EQ(p->length, 6u);
}

TEST(JumpPlanner, IndirectJumpIsRefused) {
  Bytes code(kPrologue.begin(), kPrologue.begin() + 8);
  code.insert(code.end(), {0xff, 0xe0}); // 8: jmp rax
  EXPECT_EQ(refusal(plan(code)), "jump refused: indirect jump 'jmp rax' at 0x401008 (a jump "
                                 "table?) may land in the replaced bytes");
  // A jump table through memory, refused too.
  Bytes table(kPrologue.begin(), kPrologue.begin() + 8);
  table.insert(table.end(), {0xff, 0x24, 0xc5, 0x00, 0x20, 0x40, 0x00}); // jmp [rax*8+0x402000]
  EXPECT_EQ(refusal(plan(table)),
            "jump refused: indirect jump 'jmp qword ptr [rax*8+0x402000]' at 0x401008 (a jump "
            "table?) may land in the replaced bytes");
}

TEST(JumpPlanner, CallThatIsNotLastIsRefused) {
  // call rax; mov eax, 1; ret: the call would return into the replaced bytes.
  EXPECT_EQ(refusal(plan({0xff, 0xd0, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3})),
            "jump refused: 0x401000: cannot relocate 'call rax': a call inside the replaced bytes "
            "would return into them (it must come last)");
}

TEST(JumpPlanner, UnmovableInstructionIsRefused) {
  // nop; ud2; nop; nop; nop
  EXPECT_EQ(refusal(plan({0x90, 0x0f, 0x0b, 0x90, 0x90, 0x90})),
            "jump refused: 'ud2' at 0x401001 ends the flow after 3 bytes, a jump needs 5");
  // push rbx; int3 (another debugger's breakpoint); nop; nop; nop
  EXPECT_EQ(refusal(plan({0x53, 0xcc, 0x90, 0x90, 0x90, 0xc3})),
            "jump refused: 0x401001: cannot relocate 'int3': already a breakpoint (another "
            "debugger?)");
}

TEST(JumpPlanner, ColdPartBranchingIntoTheReplacedBytesIsRefused) {
  // foo.cold at 0x402000: jmp 0x401004 (back into foo, after its push and mov)
  EXPECT_EQ(refusal(plan(kPrologue, kStart, {0xe9, 0xff, 0xef, 0xff, 0xff}, 0x402000)),
            "jump refused: 'jmp 0x401004' at 0x402000 branches into the replaced bytes (0x401004)");
  // Into the function elsewhere is fine.
  EXPECT_TRUE(plan(kPrologue, kStart, {0xe9, 0x03, 0xf0, 0xff, 0xff}, 0x402000).has_value());
}

TEST(JumpPlanner, SiteMustBeAnInstructionBoundaryInTheFunction) {
  EXPECT_EQ(refusal(plan(kPrologue, kStart + 2)),
            "jump refused: probe 0x401002 is not at an instruction boundary");
  EXPECT_EQ(refusal(plan(kPrologue, kStart + 0x100)),
            "jump refused: probe 0x401100 is outside the function [0x401000, 0x40100f)");
}

TEST(JumpPlanner, FunctionMustBeFullyDecoded) {
  // push rbp; then ff ff, which is no instruction (data in text)
  auto p = plan_jump_in(Bytes{0x55, 0xff, 0xff, 0x00, 0x00, 0x00}, kStart, kStart);
  EXPECT_EQ(refusal(p), "jump refused: function not fully decoded (data in text?): 0x401001: "
                        "cannot decode instruction (bytes ff ff 00 00 00)");
  // Instructions that do not reach the symbol's end.
  std::vector<Instruction> insns = sweep(kPrologue);
  insns.pop_back();
  EXPECT_EQ(refusal(plan_jump(insns, kStart, kStart + kPrologue.size(), kStart)),
            "jump refused: function not fully decoded: instructions end at 0x40100e, the "
            "function at 0x40100f");
  // A gap.
  insns = sweep(kPrologue);
  insns.erase(insns.begin() + 1);
  EXPECT_EQ(refusal(plan_jump(insns, kStart, kStart + kPrologue.size(), kStart)),
            "jump refused: function not fully decoded: expected an instruction at 0x401001, "
            "found one at 0x401004");
  // From bytes, accepted.
  auto ok = plan_jump_in(kPrologue, kStart, kStart);
  ASSERT_TRUE(ok.has_value()) << ok.error().text();
  EXPECT_EQ(ok->length, 8u);
}

TEST(JumpPlanner, PatchBytes) {
  auto p = plan(kPrologue);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(encode_jump_patch(*p, 0x500000),
            (Bytes{0xe9, 0xfb, 0xef, 0x0f, 0x00, // jmp 0x500000
                   0xcc, 0xcc, 0xcc}));          // int3 over the rest of sub rsp, 0x10
  EXPECT_TRUE(encode_jump_patch(*p, kStart + 0x100000000).empty());
}

// --- plan_jump_to_exit: a jump for a probe on a ret, over the instructions before it -------

Result<JumpPlan> plan_exit(const Bytes& code, uint64_t exit_offset) {
  return plan_jump_to_exit(sweep(code), kStart, kStart + code.size(), kStart + exit_offset);
}

TEST(JumpToExit, WholeInstructionsBeforeTheRet) {
  // kPrologue ends mov eax, 1 (5); leave (1); ret (1): leave + ret are 2 bytes, mov makes 7.
  auto p = plan_exit(kPrologue, 0xe);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  ASSERT_EQ(p->replaced.size(), 3u);
  EXPECT_EQ(p->replaced[0].text, "mov eax, 0x01");
  EXPECT_EQ(p->replaced[2].text, "ret");
  EXPECT_EQ(p->run_before, 2u);
  EXPECT_EQ(p->length, 7u);
  EXPECT_FALSE(p->at_function_entry);
}

TEST(JumpToExit, TailJumpOfFiveBytesNeedsNothingBefore) {
  const Bytes code = {
      0x31, 0xc0,                   // +0: xor eax, eax
      0xe9, 0x00, 0x10, 0x00, 0x00, // +2: jmp rel32 (a tail call)
  };
  auto p = plan_exit(code, 2);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  EXPECT_EQ(p->run_before, 0u);
  EXPECT_EQ(p->replaced.size(), 1u);
}

TEST(JumpToExit, RefusedAfterACall) {
  const Bytes code = {
      0xe8, 0x00, 0x00, 0x00, 0x00, // +0: call: its return address would be in the replaced bytes
      0x5d,                         // +5: pop rbp
      0xc3,                         // +6: ret
  };
  EXPECT_EQ(refusal(plan_exit(code, 6)).find("jump refused: 'call"), 0u) << refusal(plan_exit(code, 6));
}

TEST(JumpToExit, RefusedWhenABranchLandsOnTheRet) {
  const Bytes code = {
      0x85, 0xff,                   // +0: test edi, edi
      0x74, 0x05,                   // +2: je +9 (the ret)
      0xb8, 0x01, 0x00, 0x00, 0x00, // +4: mov eax, 1
      0xc3,                         // +9: ret
  };
  const std::string why = refusal(plan_exit(code, 9));
  EXPECT_NE(why.find("branches into the replaced bytes"), std::string::npos) << why;
}

TEST(JumpToExit, BranchToTheFirstReplacedInstructionIsFine) {
  const Bytes code = {
      0x85, 0xff,                   // +0: test edi, edi
      0x74, 0x00,                   // +2: je +4 (the mov: the first replaced byte)
      0xb8, 0x01, 0x00, 0x00, 0x00, // +4: mov eax, 1
      0xc3,                         // +9: ret
  };
  auto p = plan_exit(code, 9);
  ASSERT_TRUE(p.has_value()) << p.error().text();
  EXPECT_EQ(p->replaced.front().address, kStart + 4);
}

TEST(JumpToExit, RefusedAtTheFunctionStart) {
  const Bytes code = {0x31, 0xc0, 0xc3}; // xor eax, eax; ret
  EXPECT_EQ(refusal(plan_exit(code, 2)),
            "jump refused: 3 bytes from the function's start to the end of the exit at 0x401002, "
            "a jump needs 5");
}

} // namespace
} // namespace dprobe::x86_64
