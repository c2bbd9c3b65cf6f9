#include "arch/x86_64/writer.h"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace dprobe::x86_64 {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(Writer, Rel32Reach) {
  EXPECT_TRUE(fits_rel32(0x1000, 0x1000 + 0x7fffffffull));
  EXPECT_FALSE(fits_rel32(0x1000, 0x1000 + 0x80000000));
  EXPECT_TRUE(fits_rel32(0x80001000, 0x1000)); // exactly -2 GiB
  EXPECT_FALSE(fits_rel32(0x80001001, 0x1000));
  EXPECT_TRUE(fits_rel32(0x10, 0xfffffffffffffff0)); // wraps: -0x20
}

TEST(Writer, EncodeJmpRel32) {
  EXPECT_EQ(encode_jmp_rel32(0x401000, 0x402000), (Bytes{0xe9, 0xfb, 0x0f, 0x00, 0x00}));
  EXPECT_EQ(encode_jmp_rel32(0x402000, 0x401000), (Bytes{0xe9, 0xfb, 0xef, 0xff, 0xff}));
  EXPECT_EQ(encode_jmp_rel32(0x401000, 0x401005), (Bytes{0xe9, 0x00, 0x00, 0x00, 0x00}));
  EXPECT_TRUE(encode_jmp_rel32(0x401000, 0x401000 + 0x100000000).empty());
  EXPECT_EQ(encode_int3(), (Bytes{0xcc}));
}

TEST(Writer, AbsoluteJmpAndChoice) {
  CodeWriter w(0x1000);
  EXPECT_EQ(w.put_jmp(0x2000), 5u);                        // jmp rel32
  EXPECT_EQ(w.put_jmp(0x7f0000001234), 14u);               // jmp [rip+0]; .quad
  EXPECT_EQ(w.code(), (Bytes{0xe9, 0xfb, 0x0f, 0x00, 0x00, //
                             0xff, 0x25, 0x00, 0x00, 0x00, 0x00, 0x34, 0x12, 0x00, 0x00, 0x00, 0x7f,
                             0x00, 0x00}));
}

TEST(Writer, JccNearAndFar) {
  CodeWriter w(0x1000);
  EXPECT_EQ(w.put_jcc(0x4, 0x1100), 6u);         // je rel32
  EXPECT_EQ(w.put_jcc(0xc, 0x7f0000000000), 2u); // jl far: jge +14; jmp [rip+0]; .quad
  EXPECT_EQ(w.code(), (Bytes{0x0f, 0x84, 0xfa, 0x00, 0x00, 0x00, //
                             0x7d, 0x0e, 0xff, 0x25, 0x00, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00}));
}

TEST(Writer, PushMovAndPatch) {
  CodeWriter w(0x1000);
  w.put_push_rip(5);                                             // push qword ptr [rip+5]
  w.put_mov_imm64(1, 0x1122334455667788);                        // mov rcx, imm64
  w.put_mov_imm64(9, 1);                                         // mov r9, 1
  w.put_jmp_short(-2);                                           // jmp $
  EXPECT_EQ(w.code(), (Bytes{0xff, 0x35, 0x05, 0x00, 0x00, 0x00, //
                             0x48, 0xb9, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, //
                             0x49, 0xb9, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
                             0xeb, 0xfe}));
  CodeWriter p(0x1000);
  p.put_jmp_rel32(0x1000);
  p.patch_rel32(1, 0, 0x1010);
  EXPECT_EQ(p.code(), (Bytes{0xe9, 0x0b, 0x00, 0x00, 0x00}));
}

} // namespace
} // namespace dprobe::x86_64
