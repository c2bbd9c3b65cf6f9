// relocate_block: runs of instructions whose bytes are all replaced (jump-optimized probes).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/relocator.h"

namespace dprobe::x86_64 {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kFrom = 0x401000;
constexpr uint64_t kTo = 0x402000;

std::vector<Instruction> sweep(const Bytes& code, uint64_t at = kFrom) {
  auto insns = decode_all(code, at);
  EXPECT_TRUE(insns.has_value()) << insns.error().text();
  return insns.value_or(std::vector<Instruction>{});
}

TEST(RelocateBlock, InternalBranchStaysInTheCopy) {
  const Bytes code = {
      0x85, 0xc0, // 0: test eax, eax
      0x74, 0x02, // 2: je 6 (inside the block)
      0x31, 0xc0, // 4: xor eax, eax
      0x90,       // 6: nop
  };
  auto out = relocate_block(sweep(code), kTo);
  ASSERT_TRUE(out.has_value()) << out.error().text();
  EXPECT_EQ(out->code, (Bytes{
                           0x85, 0xc0,                         // test eax, eax
                           0x0f, 0x84, 0x02, 0x00, 0x00, 0x00, // je kTo+10 (the copied nop)
                           0x31, 0xc0,                         // xor eax, eax
                           0x90,                               // nop
                           0xe9, 0xf7, 0xef, 0xff, 0xff,       // jmp kFrom+7
                       }));
  EXPECT_EQ(out->first_length, 2);
  EXPECT_EQ(out->resume_jump, kTo + 11);
  EXPECT_FALSE(out->single_step_exact);
}

TEST(RelocateBlock, BranchToTheFirstInstructionGoesToTheOriginal) {
  // nop; jne 0 (back to the probed address: re-entering the probe is what the original does)
  auto out = relocate_block(sweep({0x90, 0x75, 0xfd}), kTo);
  ASSERT_TRUE(out.has_value()) << out.error().text();
  EXPECT_EQ(out->code, (Bytes{0x90,                               // nop
                              0x0f, 0x85, 0xf9, 0xef, 0xff, 0xff, // jne kFrom
                              0xe9, 0xf7, 0xef, 0xff, 0xff}));    // jmp kFrom+3
}

TEST(RelocateBlock, BranchIntoTheMiddleOfAnInstructionIsRefused) {
  // test eax, eax; je 5 (middle of the xor); xor eax, eax; nop
  auto out = relocate_block(sweep({0x85, 0xc0, 0x74, 0x01, 0x31, 0xc0, 0x90}), kTo);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401002: cannot relocate 'jz 0x401005': branches into the middle of a replaced "
            "instruction (0x401005)");
}

TEST(RelocateBlock, CallMustComeLast) {
  // call +0; nop
  auto out = relocate_block(sweep({0xe8, 0x00, 0x00, 0x00, 0x00, 0x90}), kTo);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401000: cannot relocate 'call 0x401005': a call inside the replaced bytes would "
            "return into them (it must come last)");
  // nop; call +0x100 is fine.
  auto last = relocate_block(sweep({0x90, 0xe8, 0x00, 0x01, 0x00, 0x00}), kTo);
  ASSERT_TRUE(last.has_value()) << last.error().text();
}

TEST(RelocateBlock, RipOperandIntoTheReplacedBytesIsRefused) {
  // lea rax, [rip-1] (= kFrom+6, inside the block); nop
  auto out = relocate_block(sweep({0x48, 0x8d, 0x05, 0xff, 0xff, 0xff, 0xff, 0x90}), kTo);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401000: cannot relocate 'lea rax, [rip-0x01]': RIP-relative operand 0x401006 "
            "points into the replaced bytes");
  // For a single int3-probed instruction only the first byte is replaced: no such check.
  EXPECT_TRUE(relocate(sweep({0x48, 0x8d, 0x05, 0xff, 0xff, 0xff, 0xff})[0], kTo).has_value());
}

TEST(RelocateBlock, AddressMap) {
  const Bytes code = {
      0x85, 0xc0, // 0: test eax, eax
      0x74, 0x02, // 2: je 6
      0x31, 0xc0, // 4: xor eax, eax
      0x90,       // 6: nop
  };
  auto out = relocate_block(sweep(code), kTo);
  ASSERT_TRUE(out.has_value()) << out.error().text();
  // The je grows to 6 bytes in the copy.
  EXPECT_EQ(out->address_map,
            (std::vector<std::pair<uint64_t, uint64_t>>{
                {kFrom, kTo}, {kFrom + 2, kTo + 2}, {kFrom + 4, kTo + 8}, {kFrom + 6, kTo + 10}}));
  EXPECT_FALSE(out->restart_after_syscall.has_value());
}

TEST(RelocateBlock, AddressMapAfterSyscall) {
  const Bytes code = {
      0x31, 0xc0, // 0: xor eax, eax
      0x0f, 0x05, // 2: syscall
      0x90,       // 4: nop
  };
  auto out = relocate_block(sweep(code), kTo);
  ASSERT_TRUE(out.has_value()) << out.error().text();
  EXPECT_EQ(out->code, (Bytes{
                           0x31, 0xc0,                                                 // xor
                           0x0f, 0x05,                                                 // syscall
                           0x48, 0xb9, 0x04, 0x10, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // mov rcx
                           0x90,                                                       // nop
                           0xe9, 0xf1, 0xef, 0xff, 0xff,                               // jmp
                       }));
  // A thread stopped after the syscall (perhaps inside it, to be restarted 2 bytes earlier)
  // continues at the rcx fix-up, not at the copied nop.
  EXPECT_EQ(out->address_map, (std::vector<std::pair<uint64_t, uint64_t>>{
                                  {kFrom, kTo}, {kFrom + 2, kTo + 2}, {kFrom + 4, kTo + 4}}));
  EXPECT_FALSE(out->restart_after_syscall.has_value());

  auto last = relocate_block(sweep({0x31, 0xc0, 0x0f, 0x05}), kTo);
  ASSERT_TRUE(last.has_value()) << last.error().text();
  ASSERT_TRUE(last->restart_after_syscall.has_value());
  EXPECT_EQ(*last->restart_after_syscall, std::make_pair(kFrom + 4, kTo + 4));
}

TEST(RelocateBlock, MalformedRuns) {
  auto empty = relocate_block({}, kTo);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message, "0x402000: nothing to relocate");

  std::vector<Instruction> gap = sweep({0x90, 0x90});
  gap[1].address += 1;
  auto out = relocate_block(gap, kTo);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401002: cannot relocate a block: instruction does not follow 0x401000 (which ends "
            "at 0x401001)");
}

TEST(RelocateBlock, RefusalNamesTheOffendingInstruction) {
  // nop; int3
  auto out = relocate_block(sweep({0x90, 0xcc}), kTo);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401001: cannot relocate 'int3': already a breakpoint (another debugger?)");
}

TEST(RelocateBlock, SizeBound) {
  // Worst cases, far away: loop with prefixes and call through memory.
  const Bytes code = {
      0x67, 0xe2, 0x10,                         // loopd (addr32 loop)
      0x3e, 0x74, 0x10,                         // ds je (branch hint)
      0xff, 0x94, 0x24, 0x00, 0x01, 0x00, 0x00, // call [rsp+0x100]
  };
  std::vector<Instruction> insns = sweep(code);
  ASSERT_EQ(insns.size(), 3u);
  auto out = relocate_block(insns, kFrom + 0x100000000);
  ASSERT_TRUE(out.has_value()) << out.error().text();
  EXPECT_LE(out->code.size(), max_relocated_size(insns.size()));
}

} // namespace
} // namespace dprobe::x86_64
