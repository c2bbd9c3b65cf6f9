#include "bytecode/verifier.h"

#include <gtest/gtest.h>

#include "bytecode/disassembler.h"

namespace dprobe::bytecode {
namespace {

Insn I(Op op, uint8_t dst = 0, uint8_t a = 0, uint8_t b = 0, uint32_t aux = 0, uint64_t imm = 0) {
  return Insn{op, dst, a, b, aux, imm};
}

Module valid_module() {
  Module m;
  m.maps = {MapSchema{"@hits", {FieldKind::Int}, MapValueKind::Count, false, 4096}};
  m.formats = {PrintfFormat{"%d\n", {FieldKind::Int}}};
  m.strings = {"abc"};
  m.programs = {
      Program{"BEGIN",
              {I(Op::LoadImm, 0, 0, 0, 0, 1), I(Op::Store64, 0, 0, 0, 0, 0),
               I(Op::MapUpdate, 0, 0, 1, 0, 0), I(Op::Printf, 0, 0, 0, 0, frame_range(0, 8)),
               I(Op::LoadString, 0, 0, 0, 0, 8), I(Op::Ret)},
              72}};
  return m;
}

TEST(Verifier, AcceptsAValidModule) {
  const Status status = verify(valid_module());
  EXPECT_TRUE(status) << status.error().message;
}

TEST(Verifier, NamesTheBadInstruction) {
  Module m = valid_module();
  m.programs[0].code[2].aux = 3; // map id out of range
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message, "program 0 (BEGIN): instruction 2 (mapupd): bad map id");
}

TEST(Verifier, RejectsBackwardJumps) {
  Module m = valid_module();
  m.programs[0].code[3] = I(Op::Jump, 0, 0, 0, 0, 1);
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message,
            "program 0 (BEGIN): instruction 3 (jmp): jump not forward within the program");
}

TEST(Verifier, AcceptsOnlyBackwardLoops) {
  Module m = valid_module();
  m.programs[0].code[3] = I(Op::Loop, 0, 0, 0, 0, 1);
  EXPECT_TRUE(verify(m));
  m.programs[0].code[3] = I(Op::Loop, 0, 0, 0, 0, 4);
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message,
            "program 0 (BEGIN): instruction 3 (loop): jump not forward within the program");
}

TEST(Verifier, RejectsFrameOverruns) {
  Module m = valid_module();
  m.programs[0].code[4].imm = 9; // a 64-byte string at 9 does not fit a 72-byte frame
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message,
            "program 0 (BEGIN): instruction 4 (ldstr): frame access out of bounds");
}

TEST(Verifier, RejectsPrintfWithWrongArgumentSize) {
  Module m = valid_module();
  m.formats[0].args.push_back(FieldKind::String);
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message,
            "program 0 (BEGIN): instruction 3 (printf): bad format id or argument size");
}

TEST(Verifier, RejectsSetOnACountMap) {
  Module m = valid_module();
  m.programs[0].code[2].b = static_cast<uint8_t>(UpdateOp::Set);
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message,
            "program 0 (BEGIN): instruction 2 (mapupd): update op 0 does not suit map @hits");
}

TEST(Verifier, UpdatesMustSuitTheAggregation) {
  Module m = valid_module();
  m.maps[0].value = MapValueKind::Hist;
  m.programs[0].code[2].b = static_cast<uint8_t>(UpdateOp::Bucket);
  EXPECT_TRUE(verify(m));
  m.programs[0].code[2].b = static_cast<uint8_t>(UpdateOp::Add);
  const Status add = verify(m);
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().message,
            "program 0 (BEGIN): instruction 2 (mapupd): update op 1 does not suit map @hits");
  m.maps[0].value = MapValueKind::Min;
  m.programs[0].code[2].b = static_cast<uint8_t>(UpdateOp::Max);
  EXPECT_TRUE(verify(m));
  m.maps[0].value = MapValueKind::Stats;
  EXPECT_FALSE(verify(m));
}

TEST(Verifier, RejectsAnLhistWithoutBuckets) {
  Module m = valid_module();
  m.maps[0].value = MapValueKind::Lhist;
  m.programs[0].code[2].b = static_cast<uint8_t>(UpdateOp::Bucket);
  const Status status = verify(m);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message, "map 0 (@hits): bad value kind or lhist range");
  m.maps[0].lhist_max = 10;
  m.maps[0].lhist_step = 2;
  EXPECT_TRUE(verify(m));
}

TEST(Verifier, RejectsBadTables) {
  Module m = valid_module();
  m.strings[0] = std::string(64, 'x');
  EXPECT_EQ(verify(m).error().message, "string constant 0: longer than 63 bytes");
  m = valid_module();
  m.maps[0].name = "hits";
  EXPECT_EQ(verify(m).error().message, "map 0: bad name 'hits'");
  m = valid_module();
  m.programs[0].frame_size = kMaxFrameSize + 8;
  EXPECT_EQ(verify(m).error().message, "program 0 (BEGIN): frame of 8200 bytes, more than 8192");
}

TEST(Verifier, RejectsEveryCorruptedOpcode) {
  for (unsigned op = static_cast<unsigned>(Op::kCount); op < 256; ++op) {
    Module m = valid_module();
    m.programs[0].code[0].op = static_cast<Op>(op);
    const Status status = verify(m);
    ASSERT_FALSE(status) << op;
    EXPECT_EQ(status.error().message, "program 0 (BEGIN): instruction 0 (?): bad opcode");
  }
}

TEST(Disassembler, ListsInstructions) {
  const Module m = valid_module();
  EXPECT_EQ(disassemble(m.programs[0], &m), "BEGIN (frame 72 bytes):\n"
                                            "   0: ldi r0, 1\n"
                                            "   1: st64 [fp+0], r0\n"
                                            "   2: mapupd @hits[fp+0] add r0\n"
                                            "   3: printf fmt#0, [fp+0], 8\n"
                                            "   4: ldstr [fp+8], str#0\n"
                                            "   5: ret\n");
}

TEST(Disassembler, ListsAggregationInstructions) {
  Module m = valid_module();
  m.maps[0].value = MapValueKind::Hist;
  EXPECT_EQ(disassemble(I(Op::HistIndex, 1, 2), &m), "histidx r1, r2");
  EXPECT_EQ(disassemble(I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::Bucket), 0, 8), &m),
            "mapupd @hits[fp+8] bucket r1");
  EXPECT_EQ(disassemble(I(Op::MapUpdate, 0, 1, static_cast<uint8_t>(UpdateOp::Max), 0, 0), &m),
            "mapupd @hits[fp+0] max r1");
  EXPECT_EQ(disassemble(I(Op::MapCommand, 0, 0, static_cast<uint8_t>(MapCommandKind::Zero), 0), &m),
            "mapcmd zero @hits");
  EXPECT_EQ(disassemble(I(Op::MapCommand, 0, 0, 9, 0), &m), "mapcmd ? @hits");
}

} // namespace
} // namespace dprobe::bytecode
