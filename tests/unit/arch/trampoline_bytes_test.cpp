// write_trampoline: exact bytes, the address map, and where stopped threads go.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/trampoline_writer.h"

namespace dprobe::x86_64 {
namespace {

using Bytes = std::vector<uint8_t>;
using AddressMap = std::vector<std::pair<uint64_t, uint64_t>>;
constexpr uint64_t kSite = 0x401000;
constexpr uint64_t kAt = 0x500000;
constexpr uint64_t kRegion = 0x7f1122334455;

std::vector<Instruction> sweep(const Bytes& code, uint64_t at = kSite) {
  auto insns = decode_all(code, at);
  EXPECT_TRUE(insns.has_value()) << insns.error().text();
  return insns.value_or(std::vector<Instruction>{});
}

// push rbp; mov rbp, rsp; sub rsp, 0x10
const Bytes kPrologue = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10};

TrampolineSpec spec_for(const std::vector<Instruction>& replaced, uint64_t dispatch,
                        bool save_flags) {
  TrampolineSpec spec;
  spec.address = kAt;
  spec.probe_id = 7;
  spec.region = kRegion;
  spec.dispatch = dispatch;
  spec.save_flags = save_flags;
  spec.replaced = replaced;
  return spec;
}

TEST(TrampolineWriter, FarDispatchWithFlags) {
  std::vector<Instruction> replaced = sweep(kPrologue);
  auto t = write_trampoline(spec_for(replaced, 0x7f0000001000, true));
  ASSERT_TRUE(t.has_value()) << t.error().text();
  // clang-format off
  EXPECT_EQ(t->code, (Bytes{
                         0x48, 0x8d, 0x64, 0x24, 0x80,                   // lea rsp, [rsp-0x80]
                         0x9c,                                           // pushfq
                         0xfc,                                           // cld
                         0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57,       // push rax .. rdi
                         0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53, // push r8 .. r11
                         0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, // push r12 .. r15
                         0x48, 0xbf, 0x55, 0x44, 0x33, 0x22, 0x11, 0x7f, 0x00, 0x00, // mov rdi, region
                         0xbe, 0x07, 0x00, 0x00, 0x00,                   // mov esi, 7
                         0x48, 0x89, 0xe2,                               // mov rdx, rsp
                         0x48, 0x89, 0xe3,                               // mov rbx, rsp
                         0x48, 0x83, 0xe4, 0xf0,                         // and rsp, -16
                         0x48, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00, // mov rax, dispatch
                         0xff, 0xd0,                                     // call rax
                         0x48, 0x89, 0xdc,                               // mov rsp, rbx
                         0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, // pop r15 .. r12
                         0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, // pop r11 .. r8
                         0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59,             // pop rdi .. rcx
                         0x0f, 0xb6, 0x44, 0x24, 0x09,                   // movzx eax, [rsp+9]
                         0xa8, 0x04,                                     // test al, 4 (DF)
                         0x74, 0x01,                                     // jz +1
                         0xfd,                                           // std
                         0x24, 0x08,                                     // and al, 8 (OF)
                         0x8a, 0x64, 0x24, 0x08,                         // mov ah, [rsp+8]
                         0x04, 0x78,                                     // add al, 0x78
                         0x9e,                                           // sahf
                         0x58,                                           // pop rax
                         0x48, 0x8d, 0xa4, 0x24, 0x88, 0x00, 0x00, 0x00, // lea rsp, [rsp+0x88]
                         0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, // the prologue, moved
                         0xe9, 0x83, 0x0f, 0xf0, 0xff,                   // jmp 0x401008
                     }));
  // clang-format on
  EXPECT_EQ(t->relocated_start, kAt + kTrampolineOverhead);
  EXPECT_EQ(t->resume, kSite + 8);
  EXPECT_EQ(t->dispatch_return, kAt + 0x43);
  EXPECT_EQ(t->address_map,
            (AddressMap{{kSite, kAt + 0x78}, {kSite + 1, kAt + 0x79}, {kSite + 4, kAt + 0x7c}}));
  EXPECT_FALSE(t->restart_after_syscall.has_value());
  EXPECT_EQ(t->code.size(), kTrampolineOverhead + 8 + 5) << "the overhead constant is exact";
}

TEST(TrampolineWriter, NearDispatchWithoutFlags) {
  std::vector<Instruction> replaced = sweep(kPrologue);
  auto t = write_trampoline(spec_for(replaced, kAt + 0x800, false));
  ASSERT_TRUE(t.has_value()) << t.error().text();
  // clang-format off
  EXPECT_EQ(t->code, (Bytes{
                         0x48, 0x8d, 0xa4, 0x24, 0x78, 0xff, 0xff, 0xff, // lea rsp, [rsp-0x88]
                         0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57,       // push rax .. rdi
                         0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53, // push r8 .. r11
                         0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, // push r12 .. r15
                         0x48, 0xbf, 0x55, 0x44, 0x33, 0x22, 0x11, 0x7f, 0x00, 0x00, // mov rdi, region
                         0xbe, 0x07, 0x00, 0x00, 0x00,                   // mov esi, 7
                         0x48, 0x89, 0xe2,                               // mov rdx, rsp
                         0x48, 0x89, 0xe3,                               // mov rbx, rsp
                         0x48, 0x83, 0xe4, 0xf0,                         // and rsp, -16
                         0xe8, 0xc3, 0x07, 0x00, 0x00,                   // call 0x500800
                         0x48, 0x89, 0xdc,                               // mov rsp, rbx
                         0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, // pop r15 .. r12
                         0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, // pop r11 .. r8
                         0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59, 0x58,       // pop rdi .. rax
                         0x48, 0x8d, 0xa4, 0x24, 0x88, 0x00, 0x00, 0x00, // lea rsp, [rsp+0x88]
                         0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, // the prologue, moved
                         0xe9, 0x9c, 0x0f, 0xf0, 0xff,                   // jmp 0x401008
                     }));
  // clang-format on
  EXPECT_EQ(t->relocated_start, kAt + 0x5f);
  EXPECT_EQ(t->dispatch_return, kAt + 0x3d);
}

TEST(TrampolineWriter, Refusals) {
  std::vector<Instruction> replaced = sweep(kPrologue);
  TrampolineSpec far = spec_for(replaced, kAt + 0x800, true);
  far.address = kSite + 5 + 0x7fffffff; // the farthest rel32 reaches
  EXPECT_TRUE(write_trampoline(far).has_value());
  far.address += 1;
  auto out = write_trampoline(far);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message,
            "0x401000: trampoline at 0x80401005 is out of ±2 GiB reach of the jump");

  auto empty = write_trampoline(spec_for({}, kAt + 0x800, true));
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message, "0x500000: trampoline for probe 7 replaces no instructions");

  // relocate_block's refusal, unchanged: call rax; nop; nop; nop
  std::vector<Instruction> call = sweep({0xff, 0xd0, 0x90, 0x90, 0x90});
  auto bad = write_trampoline(spec_for(call, kAt + 0x800, true));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message,
            "0x401000: cannot relocate 'call rax': a call inside the replaced bytes would return "
            "into them (it must come last)");
}

TEST(TrampolineWriter, StoppedThreads) {
  std::vector<Instruction> replaced = sweep(kPrologue);
  auto t = write_trampoline(spec_for(replaced, kAt + 0x800, true));
  ASSERT_TRUE(t.has_value()) << t.error().text();
  const uint64_t copy = t->relocated_start;
  auto at = [&](uint64_t pc, bool in_syscall = false) {
    auto r = relocated_pc(*t, pc, in_syscall);
    EXPECT_TRUE(r.has_value()) << r.error().text();
    return r.value_or(std::nullopt);
  };
  EXPECT_EQ(at(kSite - 1), std::nullopt);
  EXPECT_EQ(at(kSite), std::nullopt) << "at the site: it takes the jump";
  EXPECT_EQ(at(kSite + 1), copy + 1);
  EXPECT_EQ(at(kSite + 4), copy + 4);
  EXPECT_EQ(at(kSite + 8), std::nullopt);
  EXPECT_EQ(at(kSite + 8, true), std::nullopt);
  auto middle = relocated_pc(*t, kSite + 2, false);
  ASSERT_FALSE(middle.has_value());
  EXPECT_EQ(middle.error().message, "0x401002: thread stopped inside the replaced bytes "
                                    "[0x401000, 0x401008), not at an instruction boundary");
}

TEST(TrampolineWriter, SyscallRestart) {
  // mov eax, 39; syscall — a thread blocked in getpid has rip = end; a restart moves it back
  // 2 bytes, onto the jmp: it must go to the copy's rcx fix-up, right after the copied syscall.
  std::vector<Instruction> replaced = sweep({0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05});
  auto t = write_trampoline(spec_for(replaced, kAt + 0x800, true));
  ASSERT_TRUE(t.has_value()) << t.error().text();
  const uint64_t copy = t->relocated_start;
  ASSERT_TRUE(t->restart_after_syscall.has_value());
  EXPECT_EQ(*t->restart_after_syscall, std::make_pair(kSite + 7, copy + 7));
  // The kernel's restart: rip - 2 is the copied syscall.
  const std::size_t syscall_offset = copy + 5 - kAt;
  EXPECT_EQ(t->code[syscall_offset], 0x0f);
  EXPECT_EQ(t->code[syscall_offset + 1], 0x05);
  auto in_syscall = relocated_pc(*t, kSite + 7, true);
  ASSERT_TRUE(in_syscall.has_value());
  EXPECT_EQ(*in_syscall, copy + 7);
  auto in_user_mode = relocated_pc(*t, kSite + 7, false);
  ASSERT_TRUE(in_user_mode.has_value());
  EXPECT_EQ(*in_user_mode, std::nullopt) << "it may have jumped there: leave it";
}

TEST(TrampolineWriter, SizeBound) {
  // Far dispatch, flags, and the worst relocations far away.
  const Bytes code = {
      0x67, 0xe2, 0x10,                         // loopd
      0x3e, 0x74, 0x10,                         // ds je
      0xff, 0x94, 0x24, 0x00, 0x01, 0x00, 0x00, // call [rsp+0x100]
  };
  std::vector<Instruction> replaced = sweep(code, kAt + 0x7ffff000);
  TrampolineSpec spec = spec_for(replaced, 0x7f0000001000, true);
  auto t = write_trampoline(spec);
  ASSERT_TRUE(t.has_value()) << t.error().text();
  EXPECT_LE(t->code.size(), max_trampoline_size(replaced.size()));
}

} // namespace
} // namespace dprobe::x86_64
