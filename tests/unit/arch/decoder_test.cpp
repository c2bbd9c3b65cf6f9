#include "arch/x86_64/decoder.h"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace dprobe::x86_64 {
namespace {

Instruction must_decode(std::vector<uint8_t> bytes, uint64_t address = 0x401130) {
  auto insn = decode(bytes, address);
  EXPECT_TRUE(insn.has_value()) << insn.error().text();
  return insn.value_or(Instruction{});
}

TEST(Decoder, RipRelativeLoad) {
  // mov eax, dword ptr [rip+0x2ee6]
  Instruction insn = must_decode({0x8b, 0x05, 0xe6, 0x2e, 0x00, 0x00, 0x90});
  EXPECT_EQ(insn.address, 0x401130u);
  EXPECT_EQ(insn.length, 6);
  EXPECT_EQ(insn.text, "mov eax, dword ptr [rip+0x2ee6]");
  EXPECT_TRUE(insn.is_rip_relative);
  EXPECT_FALSE(insn.is_relative_branch);
  EXPECT_FALSE(insn.branch_target.has_value());
  EXPECT_FALSE(insn.ends_flow);
  EXPECT_EQ(insn.bytes[0], 0x8b);
  EXPECT_EQ(insn.bytes[5], 0x00);
  EXPECT_EQ(insn.bytes[6], 0x00) << "bytes past the instruction stay zero";
  EXPECT_EQ(insn.end(), 0x401136u);
}

TEST(Decoder, LeaIsRipRelative) {
  Instruction insn = must_decode({0x48, 0x8d, 0x3d, 0x00, 0xff, 0xff, 0xff});
  EXPECT_EQ(insn.text, "lea rdi, [rip-0x100]");
  EXPECT_TRUE(insn.is_rip_relative);
}

TEST(Decoder, ShortJmp) {
  Instruction insn = must_decode({0xeb, 0x10}); // jmp +0x10
  EXPECT_EQ(insn.text, "jmp 0x401142");
  EXPECT_TRUE(insn.is_relative_branch);
  EXPECT_EQ(insn.branch_target, 0x401142u);
  EXPECT_TRUE(insn.is_unconditional_jump);
  EXPECT_TRUE(insn.ends_flow);
  EXPECT_FALSE(insn.is_call);
}

TEST(Decoder, ConditionalJumpBackwards) {
  Instruction insn = must_decode({0x0f, 0x85, 0xf0, 0xff, 0xff, 0xff}); // jne -0x10
  EXPECT_EQ(insn.text, "jnz 0x401126");
  EXPECT_EQ(insn.branch_target, 0x401126u);
  EXPECT_FALSE(insn.is_unconditional_jump);
  EXPECT_FALSE(insn.ends_flow);
}

TEST(Decoder, Calls) {
  Instruction rel = must_decode({0xe8, 0x00, 0x01, 0x00, 0x00});
  EXPECT_EQ(rel.text, "call 0x401235");
  EXPECT_TRUE(rel.is_call);
  EXPECT_TRUE(rel.is_relative_branch);
  EXPECT_EQ(rel.branch_target, 0x401235u);
  EXPECT_FALSE(rel.ends_flow);

  Instruction reg = must_decode({0xff, 0xd0});
  EXPECT_EQ(reg.text, "call rax");
  EXPECT_TRUE(reg.is_call);
  EXPECT_FALSE(reg.is_relative_branch);
  EXPECT_FALSE(reg.branch_target.has_value());

  Instruction mem = must_decode({0xff, 0x15, 0x10, 0x00, 0x00, 0x00});
  EXPECT_EQ(mem.text, "call qword ptr [rip+0x10]");
  EXPECT_TRUE(mem.is_call);
  EXPECT_TRUE(mem.is_rip_relative);
  EXPECT_FALSE(mem.is_relative_branch);
}

TEST(Decoder, FlowEnders) {
  Instruction ret = must_decode({0xc3});
  EXPECT_TRUE(ret.is_ret);
  EXPECT_TRUE(ret.ends_flow);
  EXPECT_TRUE(must_decode({0x0f, 0x0b}).ends_flow);       // ud2
  EXPECT_TRUE(must_decode({0xf4}).ends_flow);             // hlt
  Instruction indirect = must_decode({0x3e, 0xff, 0xe0}); // notrack jmp rax
  EXPECT_EQ(indirect.text, "notrack jmp rax");
  EXPECT_TRUE(indirect.is_unconditional_jump);
  EXPECT_TRUE(indirect.ends_flow);
  EXPECT_FALSE(indirect.is_relative_branch);
  EXPECT_FALSE(must_decode({0xcc}).ends_flow); // int3 traps and returns
  EXPECT_FALSE(must_decode({0x0f, 0x05}).ends_flow);
}

TEST(Decoder, LoopAndXbeginHaveTargets) {
  Instruction loop = must_decode({0xe2, 0xfe}); // loop $
  EXPECT_EQ(loop.branch_target, 0x401130u);
  EXPECT_TRUE(loop.is_relative_branch);
  Instruction xbegin = must_decode({0xc7, 0xf8, 0x10, 0x00, 0x00, 0x00});
  EXPECT_EQ(xbegin.branch_target, 0x401146u);
}

TEST(Decoder, Errors) {
  auto empty = decode({}, 0x401000);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message, "0x401000: cannot decode instruction: no bytes");

  auto invalid = decode(std::vector<uint8_t>{0x06, 0x90}, 0x401000); // push es: not in 64-bit
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().message, "0x401000: cannot decode instruction (bytes 06 90)");

  auto truncated = decode(std::vector<uint8_t>{0xe8, 0x00}, 0x401000);
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().message,
            "0x401000: cannot decode instruction: truncated after 2 byte(s) (e8 00)");
}

TEST(Decoder, DecodeAllSweepsAFunction) {
  const std::vector<uint8_t> body = {
      0x55,                               // push rbp
      0x48, 0x89, 0xe5,                   // mov rbp, rsp
      0x8b, 0x05, 0xe6, 0x2e, 0x00, 0x00, // mov eax, dword ptr [rip+0x2ee6]
      0x5d,                               // pop rbp
      0xc3,                               // ret
  };
  auto insns = decode_all(body, 0x401126);
  ASSERT_TRUE(insns.has_value()) << insns.error().text();
  ASSERT_EQ(insns->size(), 5u);
  EXPECT_EQ((*insns)[0].text, "push rbp");
  EXPECT_EQ((*insns)[1].address, 0x401127u);
  EXPECT_EQ((*insns)[1].text, "mov rbp, rsp");
  EXPECT_EQ((*insns)[2].address, 0x40112au);
  EXPECT_EQ((*insns)[3].address, 0x401130u);
  EXPECT_EQ((*insns)[4].address, 0x401131u);
  EXPECT_TRUE((*insns)[4].is_ret);
}

TEST(Decoder, DecodeAllNamesTheBadByte) {
  auto bad = decode_all(std::vector<uint8_t>{0x90, 0x90, 0x06, 0x90}, 0x401000);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message, "0x401002: cannot decode instruction (bytes 06 90)");

  auto cut = decode_all(std::vector<uint8_t>{0x90, 0xe8, 0x00, 0x00}, 0x401000);
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().message,
            "0x401001: cannot decode instruction: truncated after 3 byte(s) (e8 00 00)");
}

} // namespace
} // namespace dprobe::x86_64
