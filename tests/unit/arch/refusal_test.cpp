// What the relocator refuses, with the exact one-line reason; and what it accepts.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/plan.h"
#include "arch/x86_64/relocator.h"

namespace dprobe::x86_64 {
namespace {

constexpr uint64_t kAt = 0x401136;

struct Refusal {
  std::vector<uint8_t> bytes;
  const char* message;
};

TEST(RelocatorRefusals, ExactMessages) {
  const std::vector<Refusal> refusals = {
      {{0xcc}, "0x401136: cannot relocate 'int3': already a breakpoint (another debugger?)"},
      {{0xcd, 0x03},
       "0x401136: cannot relocate 'int 0x03': already a breakpoint (another debugger?)"},
      {{0xf1},
       "0x401136: cannot relocate 'int1': debug trap (int1): its handler would see the "
       "slot's address"},
      {{0xcd, 0x21},
       "0x401136: cannot relocate 'int 0x21': software interrupt: the signal it "
       "raises would report the slot's address"},
      {{0x0f, 0x0b},
       "0x401136: cannot relocate 'ud2': deliberate trap: a SIGILL handler would "
       "see the slot's address"},
      {{0xf4},
       "0x401136: cannot relocate 'hlt': privileged instruction: it faults in user mode "
       "and the fault would name the slot"},
      {{0x0f, 0x34},
       "0x401136: cannot relocate 'sysenter': sysenter returns to a kernel-chosen "
       "address, not to the next instruction"},
      {{0xc7, 0xf8, 0x10, 0x00, 0x00, 0x00},
       "0x401136: cannot relocate 'xbegin 0x40114c': transactional memory (RTM) instruction"},
      {{0x0f, 0x01, 0xd5},
       "0x401136: cannot relocate 'xend': transactional memory (RTM) instruction"},
      {{0xc6, 0xf8, 0x01},
       "0x401136: cannot relocate 'xabort 0x01': transactional memory (RTM) instruction"},
      {{0xff, 0x1c, 0x24},
       "0x401136: cannot relocate 'call far fword ptr [rsp]': far call: it "
       "would push the slot's address as return address"},
      {{0x66, 0xe9, 0x10, 0x00, 0x00, 0x00},
       "0x401136: cannot relocate 'jmp 0x40114c': operand-size prefix on a relative branch "
       "(rel16: Intel and AMD disagree)"},
      {{0x67, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00},
       "0x401136: cannot relocate 'mov eax, dword ptr [eip]': eip-relative operand (32-bit "
       "address size) cannot be moved"},
      {{0xff, 0xd4},
       "0x401136: cannot relocate 'call rsp': call through rsp: the emulated call "
       "changes rsp first"},
      {{0xff, 0x54, 0x24, 0xf8},
       "0x401136: cannot relocate 'call qword ptr [rsp-0x08]': reads its target below rsp, where "
       "the emulated call pushes the return address"},
  };
  for (const Refusal& r : refusals) {
    auto insn = decode(r.bytes, kAt);
    ASSERT_TRUE(insn.has_value()) << insn.error().text();
    ASSERT_EQ(insn->length, r.bytes.size()) << insn->text;
    auto status = can_relocate(*insn);
    ASSERT_FALSE(status.has_value()) << insn->text;
    EXPECT_EQ(status.error().message, r.message);
    auto relocated = relocate(*insn, kAt + 0x1000);
    ASSERT_FALSE(relocated.has_value()) << insn->text;
    EXPECT_EQ(relocated.error().message, r.message);
  }
}

TEST(RelocatorRefusals, UndecodableBytes) {
  Instruction insn;
  insn.address = kAt;
  insn.length = 1;
  insn.bytes[0] = 0x06; // push es: invalid in 64-bit mode
  insn.text = "(bad)";
  auto status = can_relocate(insn);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().message, "0x401136: cannot relocate '(bad)': cannot decode it");
}

TEST(RelocatorRefusals, LengthMismatch) {
  auto insn = decode(std::vector<uint8_t>{0x48, 0x01, 0xd8}, kAt); // add rax, rbx
  ASSERT_TRUE(insn.has_value());
  insn->length = 4; // a caller that mangled the instruction
  auto status = can_relocate(*insn);
  ASSERT_FALSE(status.has_value());
  EXPECT_NE(status.error().message.find("decode to a different length"), std::string::npos);
}

struct Accepted {
  std::vector<uint8_t> bytes;
  Fixup fixup;
};

TEST(RelocatorRefusals, AcceptedWithTheRightFixup) {
  const std::vector<Accepted> accepted = {
      {{0x48, 0x01, 0xd8}, Fixup::kVerbatim},                       // add rax, rbx
      {{0xc3}, Fixup::kVerbatim},                                   // ret
      {{0xcd, 0x80}, Fixup::kVerbatim},                             // int 0x80
      {{0xf3, 0x0f, 0x1e, 0xfa}, Fixup::kVerbatim},                 // endbr64
      {{0x3e, 0xff, 0xe0}, Fixup::kVerbatim},                       // notrack jmp rax
      {{0x0f, 0x01, 0xd6}, Fixup::kVerbatim},                       // xtest
      {{0xf3, 0x48, 0xa5}, Fixup::kVerbatim},                       // rep movsq
      {{0x8b, 0x05, 0xe6, 0x2e, 0x00, 0x00}, Fixup::kRipRelative},  // mov eax, [rip+x]
      {{0xff, 0x25, 0x00, 0x10, 0x00, 0x00}, Fixup::kRipRelative},  // jmp [rip+x]
      {{0xeb, 0x10}, Fixup::kJmp},                                  // jmp short
      {{0x74, 0x10}, Fixup::kJcc},                                  // je short
      {{0xe8, 0x00, 0x00, 0x00, 0x00}, Fixup::kCallRelative},       // call next
      {{0xff, 0xd0}, Fixup::kCallIndirect},                         // call rax
      {{0xff, 0x15, 0x00, 0x10, 0x00, 0x00}, Fixup::kCallIndirect}, // call [rip+x]
      {{0xff, 0x14, 0x24}, Fixup::kCallIndirect},                   // call [rsp]
      {{0xe2, 0xfe}, Fixup::kLoop},                                 // loop $
      {{0xe3, 0x10}, Fixup::kLoop},                                 // jrcxz
      {{0x0f, 0x05}, Fixup::kSyscall},                              // syscall
  };
  for (const Accepted& a : accepted) {
    auto insn = decode(a.bytes, kAt);
    ASSERT_TRUE(insn.has_value());
    SCOPED_TRACE(insn->text);
    EXPECT_TRUE(can_relocate(*insn).has_value());
    auto plan = plan_relocation(*insn);
    ASSERT_TRUE(plan.has_value()) << plan.error().text();
    EXPECT_EQ(fixup_name(plan->fixup), fixup_name(a.fixup));
  }
}

} // namespace
} // namespace dprobe::x86_64
