#include "bytecode/vm.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bytecode/disassembler.h"
#include "bytecode/module.h"
#include "fake_host.h"

namespace dprobe::bytecode {
namespace {

constexpr uint64_t kMinusOne = ~0ull;
constexpr uint64_t kInt64Min = 1ull << 63;

Insn I(Op op, uint8_t dst = 0, uint8_t a = 0, uint8_t b = 0, uint32_t aux = 0, uint64_t imm = 0) {
  return Insn{op, dst, a, b, aux, imm};
}

uint64_t neg(uint64_t v) {
  return 0 - v;
}

class VmTest : public ::testing::Test {
 protected:
  VmTest() {
    module_.maps = {MapSchema{"@scalar", {}, MapValueKind::Int, true, 1},
                    MapSchema{"@keyed", {FieldKind::Int}, MapValueKind::Count, false, 4096}};
    module_.formats = {PrintfFormat{"%d %s\n", {FieldKind::Int, FieldKind::String}}};
    module_.strings = {"hello", ""};
  }

  VmStatus run(std::vector<Insn> code, uint32_t frame_size = 256) {
    module_.programs = {Program{"test", std::move(code), frame_size}};
    VmModuleTables tables(module_);
    return vm_run(tables.program(0), tables.view(), context_, host_.host(), *state_);
  }

  /// r0 = a OP b
  uint64_t binary(Op op, uint64_t a, uint64_t b) {
    EXPECT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, a), I(Op::LoadImm, 2, 0, 0, 0, b), I(op, 0, 1, 2)}),
              VmStatus::Ok);
    return state_->regs[0];
  }

  std::string frame_string(uint32_t offset) const {
    return std::string(reinterpret_cast<const char*>(state_->frame + offset));
  }

  Module module_;
  testing::FakeHost host_;
  VmContext context_{};
  std::unique_ptr<VmState> state_ = std::make_unique<VmState>();
};

TEST_F(VmTest, ArithmeticWrapsAndDivisionByZeroFollowsBpf) {
  EXPECT_EQ(binary(Op::Add, kMinusOne, 1), 0u);
  EXPECT_EQ(binary(Op::Sub, 0, 1), kMinusOne);
  EXPECT_EQ(binary(Op::Mul, 1ull << 32, 1ull << 32), 0u);
  EXPECT_EQ(binary(Op::UDiv, 7, 0), 0u);
  EXPECT_EQ(binary(Op::UMod, 7, 0), 7u); // BPF leaves the dividend
  EXPECT_EQ(binary(Op::UDiv, neg(7), 2), 0x7ffffffffffffffcull);
  EXPECT_EQ(binary(Op::UMod, neg(7), 2), 1u);
  EXPECT_EQ(binary(Op::SDiv, neg(7), 2), neg(3));
  EXPECT_EQ(binary(Op::SMod, neg(7), 2), neg(1));
  EXPECT_EQ(binary(Op::SDiv, 7, 0), 0u);
  EXPECT_EQ(binary(Op::SMod, 7, 0), 7u);
  EXPECT_EQ(binary(Op::SDiv, kInt64Min, kMinusOne), kInt64Min);
  EXPECT_EQ(binary(Op::SMod, kInt64Min, kMinusOne), 0u);
}

TEST_F(VmTest, ShiftsMaskTheirCount) {
  EXPECT_EQ(binary(Op::Shl, 1, 63), kInt64Min);
  EXPECT_EQ(binary(Op::Shl, 1, 64), 1u);
  EXPECT_EQ(binary(Op::LShr, neg(8), 1), 0x7ffffffffffffffcull);
  EXPECT_EQ(binary(Op::AShr, neg(8), 1), neg(4));
  EXPECT_EQ(binary(Op::AShr, neg(8), 0), neg(8));
  EXPECT_EQ(binary(Op::AShr, neg(8), 63), kMinusOne);
  EXPECT_EQ(binary(Op::AShr, 8, 2), 2u);
}

TEST_F(VmTest, ComparisonsAndBitwise) {
  EXPECT_EQ(binary(Op::ULt, kMinusOne, 0), 0u);
  EXPECT_EQ(binary(Op::SLt, kMinusOne, 0), 1u);
  EXPECT_EQ(binary(Op::ULe, 3, 3), 1u);
  EXPECT_EQ(binary(Op::SGe, neg(2), neg(1)), 0u);
  EXPECT_EQ(binary(Op::UGt, kMinusOne, 1), 1u);
  EXPECT_EQ(binary(Op::SGt, kMinusOne, 1), 0u);
  EXPECT_EQ(binary(Op::UGe, 0, 0), 1u);
  EXPECT_EQ(binary(Op::SLe, neg(5), 5), 1u);
  EXPECT_EQ(binary(Op::Eq, 4, 4), 1u);
  EXPECT_EQ(binary(Op::Ne, 4, 4), 0u);
  EXPECT_EQ(binary(Op::And, 0b1100, 0b1010), 0b1000u);
  EXPECT_EQ(binary(Op::Or, 0b1100, 0b1010), 0b1110u);
  EXPECT_EQ(binary(Op::Xor, 0b1100, 0b1010), 0b0110u);
}

TEST_F(VmTest, UnaryOps) {
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 5), I(Op::Neg, 2, 1), I(Op::Not, 3, 1),
                 I(Op::LNot, 4, 1), I(Op::LNot, 5, 0), I(Op::Mov, 6, 1)}),
            VmStatus::Ok);
  EXPECT_EQ(state_->regs[2], neg(5));
  EXPECT_EQ(state_->regs[3], ~5ull);
  EXPECT_EQ(state_->regs[4], 0u);
  EXPECT_EQ(state_->regs[5], 1u);
  EXPECT_EQ(state_->regs[6], 5u);
}

TEST_F(VmTest, RegistersAndFrameStartZeroed) {
  state_->regs[7] = 99;
  state_->frame[3] = 99;
  ASSERT_EQ(run({I(Op::Load64, 1, 0, 0, 0, 0)}), VmStatus::Ok);
  EXPECT_EQ(state_->regs[7], 0u);
  EXPECT_EQ(state_->regs[1], 0u);
}

TEST_F(VmTest, ContextFields) {
  for (int i = 0; i < 6; ++i)
    context_.args[i] = 100 + static_cast<uint64_t>(i);
  context_.pid = 7;
  context_.tid = 8;
  context_.nsecs = 9;
  std::vector<Insn> code;
  for (uint32_t f = 0; f < static_cast<uint32_t>(CtxField::kCount); ++f) {
    code.push_back(I(Op::LoadCtx, static_cast<uint8_t>(f), 0, 0, f));
  }
  ASSERT_EQ(run(code), VmStatus::Ok);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(state_->regs[i], 100u + static_cast<uint64_t>(i));
  EXPECT_EQ(state_->regs[static_cast<int>(CtxField::Pid)], 7u);
  EXPECT_EQ(state_->regs[static_cast<int>(CtxField::Tid)], 8u);
  EXPECT_EQ(state_->regs[static_cast<int>(CtxField::Nsecs)], 9u);
}

TEST_F(VmTest, FrameStoresAreLittleEndian) {
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x0102030405060708ull), I(Op::Store64, 0, 1, 0, 0, 8),
                 I(Op::Load64, 2, 0, 0, 0, 8)}),
            VmStatus::Ok);
  EXPECT_EQ(state_->frame[8], 0x08);
  EXPECT_EQ(state_->frame[15], 0x01);
  EXPECT_EQ(state_->regs[2], 0x0102030405060708ull);
}

TEST_F(VmTest, ConstantAndContextStrings) {
  std::memcpy(context_.comm, "worker-1", 9);
  ASSERT_EQ(run({I(Op::LoadString, 0, 0, 0, 0, 0), I(Op::LoadCtxString, 0, 0, 0, 0, 64),
                 I(Op::LoadString, 0, 0, 0, 1, 128)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "hello");
  EXPECT_EQ(state_->frame[63], 0); // NUL padded to the field's end
  EXPECT_EQ(frame_string(64), "worker-1");
  EXPECT_EQ(frame_string(128), "");
}

TEST_F(VmTest, ReadStringStopsAtNulAndLength) {
  // Real memory is mapped by whole pages; so is this (the bytes after "junk" are zeros).
  std::string page("gamma\0junk", 10);
  page.resize(kPageSize, '\0');
  host_.add_memory(0x10000, page);
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x10000), I(Op::LoadImm, 2, 0, 0, 0, 63),
                 I(Op::ReadString, 0, 1, 2, 0, 0), I(Op::LoadImm, 2, 0, 0, 0, 3),
                 I(Op::ReadString, 0, 1, 2, 0, 64), I(Op::LoadImm, 2, 0, 0, 0, 0),
                 I(Op::ReadString, 0, 1, 2, 0, 128)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "gamma");
  EXPECT_EQ(state_->frame[6], 0); // "junk" after the NUL is not kept
  EXPECT_EQ(frame_string(64), "gam");
  EXPECT_EQ(frame_string(128), "");
}

TEST_F(VmTest, ReadStringClampsTo63Characters) {
  host_.add_memory(0x10000, std::string(100, 'x'));
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x10000), I(Op::LoadImm, 2, 0, 0, 0, 1000),
                 I(Op::ReadString, 0, 1, 2, 0, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), std::string(63, 'x'));
}

TEST_F(VmTest, ReadStringOnAFaultGivesEmptyString) {
  ASSERT_EQ(run({I(Op::LoadString, 0, 0, 0, 0, 0), // garbage that must be cleared
                 I(Op::LoadImm, 1, 0, 0, 0, 0xdead0000), I(Op::LoadImm, 2, 0, 0, 0, 63),
                 I(Op::ReadString, 0, 1, 2, 0, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "");
  for (int i = 0; i < 64; ++i)
    ASSERT_EQ(state_->frame[i], 0) << i;
}

TEST_F(VmTest, ReadStringReadsPageByPage) {
  // "abcd\0" ends 1 byte before an unmapped page: one 63-byte read would fail, bpftrace's
  // probe_read_user_str succeeds, and so must we.
  host_.add_memory(0x20000 - 5, std::string("abcd\0", 5));
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x20000 - 5), I(Op::LoadImm, 2, 0, 0, 0, 63),
                 I(Op::ReadString, 0, 1, 2, 0, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "abcd");
  ASSERT_EQ(host_.reads.size(), 1u);
  EXPECT_EQ(host_.reads[0].second, 5u);
}

TEST_F(VmTest, ReadStringRunningIntoUnmappedPageIsEmpty) {
  host_.add_memory(0x20000 - 3, "abc"); // no NUL before the page ends
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x20000 - 3), I(Op::LoadImm, 2, 0, 0, 0, 63),
                 I(Op::ReadString, 0, 1, 2, 0, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "");
}

TEST_F(VmTest, ReadStringAtTopOfAddressSpaceDoesNotWrap) {
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, kMinusOne - 2), I(Op::LoadImm, 2, 0, 0, 0, 63),
                 I(Op::ReadString, 0, 1, 2, 0, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(0), "");
  // Reads may end exactly at 2^64 but never wrap around to low addresses.
  for (const auto& [address, length] : host_.reads)
    EXPECT_GE(address + (length - 1), address);
}

TEST_F(VmTest, CopyAndStringEquality) {
  ASSERT_EQ(run({I(Op::LoadString, 0, 0, 0, 0, 0), I(Op::Copy, 0, 0, 0, 0, frame_range(64, 64)),
                 I(Op::StrEq, 1, 0, 0, 0, 64), I(Op::LoadString, 0, 0, 0, 1, 128),
                 I(Op::StrEq, 2, 0, 0, 0, 128)}),
            VmStatus::Ok);
  EXPECT_EQ(frame_string(64), "hello");
  EXPECT_EQ(state_->regs[1], 1u);
  EXPECT_EQ(state_->regs[2], 0u);
}

TEST_F(VmTest, ForwardJumps) {
  ASSERT_EQ(run({I(Op::JumpIfZero, 0, 5, 0, 0, 2), // r5 == 0: skip the next instruction
                 I(Op::LoadImm, 1, 0, 0, 0, 111), I(Op::LoadImm, 2, 0, 0, 0, 1),
                 I(Op::JumpIfNotZero, 0, 2, 0, 0, 5), I(Op::LoadImm, 3, 0, 0, 0, 333),
                 I(Op::Jump, 0, 0, 0, 0, 7), I(Op::LoadImm, 4, 0, 0, 0, 444)}),
            VmStatus::Ok);
  EXPECT_EQ(state_->regs[1], 0u);
  EXPECT_EQ(state_->regs[3], 0u);
  EXPECT_EQ(state_->regs[4], 0u); // jumped to the end
}

TEST_F(VmTest, LoopJumpsBackAndTheStepBudgetEndsRunaways) {
  // r1 = 0; do r1 += 1 while r1 != 10
  ASSERT_EQ(run({I(Op::LoadImm, 2, 0, 0, 0, 1), I(Op::LoadImm, 3, 0, 0, 0, 10), I(Op::Add, 1, 1, 2),
                 I(Op::Ne, 4, 1, 3), I(Op::JumpIfZero, 0, 4, 0, 0, 6), I(Op::Loop, 0, 0, 0, 0, 2)}),
            VmStatus::Ok);
  EXPECT_EQ(state_->regs[1], 10u);
  EXPECT_EQ(run({I(Op::Nop), I(Op::Loop, 0, 0, 0, 0, 0)}), VmStatus::StepLimit);
  EXPECT_EQ(run({I(Op::Loop, 0, 0, 0, 0, 0)}), VmStatus::StepLimit);           // to itself
  EXPECT_EQ(run({I(Op::Loop, 0, 0, 0, 0, 1), I(Op::Nop)}), VmStatus::BadJump); // forward
}

TEST_F(VmTest, ExtendTruncatesThenExtends) {
  auto extend = [&](uint64_t v, uint32_t size, bool is_signed) {
    EXPECT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, v), I(Op::Extend, 0, 1, 0, size, is_signed)}),
              VmStatus::Ok);
    return state_->regs[0];
  };
  EXPECT_EQ(extend(0x1ff, 1, false), 0xffu);
  EXPECT_EQ(extend(0x1ff, 1, true), kMinusOne);
  EXPECT_EQ(extend(0x17f, 1, true), 0x7fu);
  EXPECT_EQ(extend(0xfffffc11, 2, true), neg(1007));
  EXPECT_EQ(extend(0x1fffffffe, 4, true), neg(2));
  EXPECT_EQ(extend(0x1fffffffe, 4, false), 0xfffffffeu);
  EXPECT_EQ(extend(kMinusOne, 8, false), kMinusOne);
  EXPECT_EQ(run({I(Op::Extend, 0, 1, 0, 3, 0)}), VmStatus::BadOpcode);
}

TEST_F(VmTest, ReadIntReadsTargetMemoryAndFaultsToZero) {
  host_.add_memory(0x5000, std::string("\xfe\xff\x01\x02\x03\x04\x05\x86", 8));
  auto read = [&](uint64_t address, uint32_t size, bool is_signed) {
    EXPECT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, address), I(Op::ReadInt, 0, 1, 0, size, is_signed)}),
              VmStatus::Ok);
    return state_->regs[0];
  };
  EXPECT_EQ(read(0x5000, 1, false), 0xfeu);
  EXPECT_EQ(read(0x5000, 1, true), neg(2));
  EXPECT_EQ(read(0x5000, 2, true), neg(2));
  EXPECT_EQ(read(0x5001, 2, false), 0x01ffu);
  EXPECT_EQ(read(0x5000, 8, false), 0x86050403'0201fffeull);
  EXPECT_EQ(read(0x5004, 8, false), 0u); // runs past the mapped bytes
  EXPECT_EQ(read(0, 4, true), 0u);
}

TEST_F(VmTest, ReadBufKeepsLengthAndBytes) {
  host_.add_memory(0x5000, std::string("ab\0cd", 5) + std::string(100, 'z'));
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x5000), I(Op::LoadImm, 2, 0, 0, 0, 4),
                 I(Op::ReadBuf, 0, 1, 2, 0, 8)}),
            VmStatus::Ok);
  EXPECT_EQ(load_u64_le(state_->frame + 8), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(state_->frame + 16), 5),
            std::string("ab\0c\0", 5));
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x5000), I(Op::LoadImm, 2, 0, 0, 0, 1000),
                 I(Op::ReadBuf, 0, 1, 2, 0, 8)}),
            VmStatus::Ok);
  EXPECT_EQ(load_u64_le(state_->frame + 8), kMaxBufferLength);
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 0x9000), I(Op::LoadImm, 2, 0, 0, 0, 3),
                 I(Op::ReadBuf, 0, 1, 2, 0, 8)}),
            VmStatus::Ok);
  EXPECT_EQ(load_u64_le(state_->frame + 8), 3u);
  EXPECT_EQ(state_->frame[16], 0);
  EXPECT_EQ(run({I(Op::ReadBuf, 0, 1, 2, 0, 200)}), VmStatus::BadFrameAccess);
}

TEST_F(VmTest, RegistersAndNewContextFields) {
  context_.uid = 5;
  context_.cpu = 7;
  context_.elapsed = 9;
  context_.regs[static_cast<uint32_t>(CtxReg::Rsp)] = 0x7ffc;
  ASSERT_EQ(run({I(Op::LoadCtx, 0, 0, 0, static_cast<uint32_t>(CtxField::Uid)),
                 I(Op::LoadCtx, 1, 0, 0, static_cast<uint32_t>(CtxField::Cpu)),
                 I(Op::LoadCtx, 2, 0, 0, static_cast<uint32_t>(CtxField::Elapsed)),
                 I(Op::LoadCtx, 3, 0, 0, static_cast<uint32_t>(reg_field(CtxReg::Rsp)))}),
            VmStatus::Ok);
  EXPECT_EQ(state_->regs[0], 5u);
  EXPECT_EQ(state_->regs[1], 7u);
  EXPECT_EQ(state_->regs[2], 9u);
  EXPECT_EQ(state_->regs[3], 0x7ffcu);
  EXPECT_EQ(run({I(Op::LoadCtx, 0, 0, 0, static_cast<uint32_t>(CtxField::kCount))}),
            VmStatus::BadContextField);
}

TEST_F(VmTest, MapOperationsGoThroughTheHost) {
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 42), I(Op::MapUpdate, 0, 1, 0, 0, 0), // @scalar = 42
                 I(Op::LoadImm, 2, 0, 0, 0, 7), I(Op::Store64, 0, 2, 0, 0, 8),
                 I(Op::LoadImm, 3, 0, 0, 0, 1), I(Op::MapUpdate, 0, 3, 1, 1, 8), // @keyed[7] += 1
                 I(Op::MapUpdate, 0, 3, 1, 1, 8), I(Op::MapLookup, 4, 0, 0, 1, 8),
                 I(Op::MapLookup, 5, 0, 0, 0, 0), I(Op::Store64, 0, 3, 0, 0, 8),
                 I(Op::MapLookup, 6, 0, 0, 1, 8)}), // @keyed[1] is absent: 0
            VmStatus::Ok);
  EXPECT_EQ(state_->regs[4], 2u);
  EXPECT_EQ(state_->regs[5], 42u);
  EXPECT_EQ(state_->regs[6], 0u);
  const std::string key7("\x07\0\0\0\0\0\0\0", 8);
  EXPECT_EQ((host_.maps[{1, key7}]), 2u);
  ASSERT_EQ(run({I(Op::LoadImm, 2, 0, 0, 0, 7), I(Op::Store64, 0, 2, 0, 0, 0),
                 I(Op::MapDelete, 0, 0, 0, 1, 0)}),
            VmStatus::Ok);
  EXPECT_EQ(host_.maps.count({1, key7}), 0u);
}

TEST_F(VmTest, PrintfEmitsPackedArguments) {
  ASSERT_EQ(
      run({I(Op::LoadImm, 1, 0, 0, 0, 5), I(Op::Store64, 0, 1, 0, 0, 16),
           I(Op::LoadString, 0, 0, 0, 0, 24), I(Op::Printf, 0, 0, 0, 0, frame_range(16, 72))}),
      VmStatus::Ok);
  ASSERT_EQ(host_.printfs.size(), 1u);
  EXPECT_EQ(host_.printfs[0].first, 0u);
  const std::string& args = host_.printfs[0].second;
  ASSERT_EQ(args.size(), 72u);
  EXPECT_EQ(load_u64_le(reinterpret_cast<const uint8_t*>(args.data())), 5u);
  EXPECT_EQ(std::string(args.c_str() + 8), "hello");
}

TEST_F(VmTest, ExitStopsTheProgram) {
  EXPECT_EQ(run({I(Op::Exit), I(Op::LoadImm, 1, 0, 0, 0, 1)}), VmStatus::Exited);
  EXPECT_EQ(host_.exits, 1);
  EXPECT_EQ(state_->regs[1], 0u);
  EXPECT_EQ(run({I(Op::Ret), I(Op::LoadImm, 1, 0, 0, 0, 1)}), VmStatus::Ok);
  EXPECT_EQ(state_->regs[1], 0u);
}

// --- robustness: corrupted bytecode is caught, never executed -------------------------------

TEST_F(VmTest, CorruptInstructionsAreRejected) {
  EXPECT_EQ(run({I(static_cast<Op>(200))}), VmStatus::BadOpcode);
  EXPECT_EQ(run({I(Op::kCount)}), VmStatus::BadOpcode);
  EXPECT_EQ(run({I(Op::LoadImm, kNumRegisters)}), VmStatus::BadRegister);
  EXPECT_EQ(run({I(Op::Add, 0, 1, 255)}), VmStatus::BadRegister);
  EXPECT_EQ(run({I(Op::Load64, 0, 0, 0, 0, 256 - 4)}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::Store64, 0, 0, 0, 0, 1ull << 40)}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::Store64, 0, 0, 0, 0, kMinusOne - 3)}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::LoadString, 0, 0, 0, 0, 200)}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::Copy, 0, 0, 0, 0, frame_range(0, 300))}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::Copy, 0, 0, 0, 250, frame_range(0, 8))}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::Nop), I(Op::Jump, 0, 0, 0, 0, 0)}), VmStatus::BadJump); // backward
  EXPECT_EQ(run({I(Op::Jump, 0, 0, 0, 0, 0)}), VmStatus::BadJump);             // to itself
  EXPECT_EQ(run({I(Op::JumpIfZero, 0, 0, 0, 0, 5)}), VmStatus::BadJump);       // past the end
  EXPECT_EQ(run({I(Op::MapLookup, 0, 0, 0, 2, 0)}), VmStatus::BadMap);
  EXPECT_EQ(run({I(Op::MapUpdate, 0, 0, 9, 0, 0)}), VmStatus::BadUpdateOp);
  EXPECT_EQ(run({I(Op::MapUpdate, 0, 0, 1, 1, 252)}), VmStatus::BadFrameAccess); // key past frame
  EXPECT_EQ(run({I(Op::Printf, 0, 0, 0, 1, frame_range(0, 72))}), VmStatus::BadFormat);
  EXPECT_EQ(run({I(Op::Printf, 0, 0, 0, 0, frame_range(0, 8))}), VmStatus::BadFormat);
  EXPECT_EQ(run({I(Op::Printf, 0, 0, 0, 0, frame_range(200, 72))}), VmStatus::BadFrameAccess);
  EXPECT_EQ(run({I(Op::LoadString, 0, 0, 0, 2, 0)}), VmStatus::BadString);
  EXPECT_EQ(run({I(Op::LoadCtx, 0, 0, 0, 99)}), VmStatus::BadContextField);
  EXPECT_EQ(run({I(Op::LoadCtxString, 0, 0, 0, 1, 0)}), VmStatus::BadContextField);
  EXPECT_EQ(run({I(Op::Nop)}, kMaxFrameSize + 1), VmStatus::BadProgram);
  // Nothing reached the host.
  EXPECT_TRUE(host_.maps.empty());
  EXPECT_TRUE(host_.printfs.empty());
}

TEST_F(VmTest, ProgramHeaderIsChecked) {
  VmModuleTables tables(module_);
  const Insn nop = I(Op::Nop);
  EXPECT_EQ(vm_run(VmProgram{nullptr, 3, 0}, tables.view(), context_, host_.host(), *state_),
            VmStatus::BadProgram);
  EXPECT_EQ(vm_run(VmProgram{&nop, kMaxProgramLength + 1, 0}, tables.view(), context_, host_.host(),
                   *state_),
            VmStatus::BadProgram);
  EXPECT_EQ(vm_run(VmProgram{nullptr, 0, 0}, tables.view(), context_, host_.host(), *state_),
            VmStatus::Ok);
}

TEST_F(VmTest, NullHostCallbacksAreFailures) {
  VmModuleTables tables(module_);
  module_.programs = {Program{"t",
                              {I(Op::LoadImm, 1, 0, 0, 0, 0x10000), I(Op::LoadImm, 2, 0, 0, 0, 63),
                               I(Op::ReadString, 0, 1, 2, 0, 0), I(Op::MapUpdate, 0, 1, 0, 0, 0),
                               I(Op::MapLookup, 3, 0, 0, 0, 0), I(Op::MapDelete, 0, 0, 0, 0, 0),
                               I(Op::Printf, 0, 0, 0, 0, frame_range(0, 72)), I(Op::Exit)},
                              128}};
  const VmHost empty{};
  EXPECT_EQ(vm_run(tables.program(0), tables.view(), context_, empty, *state_), VmStatus::Exited);
  EXPECT_EQ(frame_string(0), "");
  EXPECT_EQ(state_->regs[3], 0u);
}

TEST_F(VmTest, EmptyModuleTablesAreSafe) {
  const VmModule empty{};
  const Insn code[] = {I(Op::MapLookup, 0, 0, 0, 0, 0), I(Op::Printf, 0, 0, 0, 0, 0),
                       I(Op::LoadString, 0, 0, 0, 0, 0)};
  for (const Insn& insn : code) {
    EXPECT_NE(vm_run(VmProgram{&insn, 1, 64}, empty, context_, host_.host(), *state_), VmStatus::Ok)
        << disassemble(insn);
  }
}

/// Random bytes as programs: the VM must never crash, and whatever the verifier's per-instruction
/// check accepts must run without a fault status.
TEST_F(VmTest, RandomProgramsNeverCrashTheVm) {
  std::mt19937_64 rng(1234);
  host_.add_memory(0x1000, std::string(64, 'a'));
  VmModuleTables tables(module_);
  for (int round = 0; round < 3000; ++round) {
    std::vector<Insn> code(1 + rng() % 24);
    for (Insn& insn : code) {
      insn.op = static_cast<Op>(rng() % (static_cast<unsigned>(Op::kCount) + 3));
      insn.dst = static_cast<uint8_t>(rng() % 70);
      insn.a = static_cast<uint8_t>(rng() % 70);
      insn.b = static_cast<uint8_t>(rng() % 4);
      insn.aux = static_cast<uint32_t>(rng() % 4);
      insn.imm = (rng() % 2) ? rng() % 320 : rng();
    }
    const uint32_t frame = static_cast<uint32_t>(rng() % 300);
    const VmProgram program{code.data(), static_cast<uint32_t>(code.size()), frame};
    bool valid = true;
    for (uint32_t pc = 0; pc < code.size(); ++pc) {
      valid = valid && vm_check_insn(code[pc], pc, program, tables.view()) == VmStatus::Ok;
    }
    const VmStatus status = vm_run(program, tables.view(), context_, host_.host(), *state_);
    if (valid) {
      EXPECT_TRUE(status == VmStatus::Ok || status == VmStatus::Exited)
          << "round " << round << ": " << vm_status_name(status);
    }
  }
}

TEST_F(VmTest, HistIndexIsBpftracesBucket) {
  const uint64_t inputs[] = {neg(5), 0, 1, 2, 3, 4, 1023, 1024, 1ull << 35};
  const uint64_t buckets[] = {0, 1, 2, 3, 3, 4, 11, 12, 33};
  for (size_t i = 0; i < std::size(inputs); ++i) {
    ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, inputs[i]), I(Op::HistIndex, 0, 1)}), VmStatus::Ok);
    EXPECT_EQ(state_->regs[0], buckets[i]) << inputs[i];
  }
}

TEST_F(VmTest, AggregatingUpdatesReachTheHostWithTheirOp) {
  ASSERT_EQ(run({I(Op::LoadImm, 1, 0, 0, 0, 7),
                 I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::Max), 0, 0),
                 I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::Avg), 0, 0),
                 I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::Bucket), 0, 0)}),
            VmStatus::Ok);
  ASSERT_EQ(host_.updates.size(), 3u);
  EXPECT_EQ(std::get<1>(host_.updates[0]), static_cast<uint32_t>(UpdateOp::Max));
  EXPECT_EQ(std::get<1>(host_.updates[1]), static_cast<uint32_t>(UpdateOp::Avg));
  EXPECT_EQ(std::get<1>(host_.updates[2]), static_cast<uint32_t>(UpdateOp::Bucket));
  EXPECT_EQ(std::get<2>(host_.updates[2]), 7u);
  EXPECT_EQ(run({I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::kCount), 0, 0)}),
            VmStatus::BadUpdateOp);
}

TEST_F(VmTest, MapCommandsReachTheHost) {
  ASSERT_EQ(run({I(Op::MapCommand, 0, 0, static_cast<uint8_t>(MapCommandKind::Print), 1),
                 I(Op::MapCommand, 0, 0, static_cast<uint8_t>(MapCommandKind::Zero), 0),
                 I(Op::MapCommand, 0, 0, static_cast<uint8_t>(MapCommandKind::Clear), 1)}),
            VmStatus::Ok);
  const std::vector<std::pair<uint32_t, uint32_t>> expected = {
      {1, static_cast<uint32_t>(MapCommandKind::Print)},
      {0, static_cast<uint32_t>(MapCommandKind::Zero)},
      {1, static_cast<uint32_t>(MapCommandKind::Clear)}};
  EXPECT_EQ(host_.commands, expected);
  EXPECT_EQ(run({I(Op::MapCommand, 0, 0, static_cast<uint8_t>(MapCommandKind::kCount), 0)}),
            VmStatus::BadUpdateOp);
  EXPECT_EQ(run({I(Op::MapCommand, 0, 0, 0, 2)}), VmStatus::BadMap);
  EXPECT_EQ(host_.commands.size(), 3u);
}

} // namespace
} // namespace dprobe::bytecode
