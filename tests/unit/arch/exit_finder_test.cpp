// find_exits: which instructions of a function count as its exits, on real encodings.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/exit_finder.h"

namespace dprobe::x86_64 {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kStart = 0x401000;
constexpr uint64_t kCold = 0x400100;

std::vector<Instruction> sweep(const Bytes& code, uint64_t at) {
  auto insns = decode_all(code, at);
  EXPECT_TRUE(insns.has_value()) << insns.error().text();
  return insns.value_or(std::vector<Instruction>{});
}

/// The exits of the function `code` at kStart, with an optional cold part at kCold, as
/// "offset-from-its-part:kind" strings.
struct Found {
  std::vector<std::string> exits;
  std::vector<std::string> notes;
  std::string error;
};

Found exits_of(const Bytes& code, const Bytes& cold = {}) {
  const std::vector<Instruction> body = sweep(code, kStart);
  const std::vector<Instruction> cold_insns = cold.empty() ? body : sweep(cold, kCold);
  std::vector<FunctionPart> parts{{body, kStart, kStart + code.size()}};
  if (!cold.empty()) parts.push_back({cold_insns, kCold, kCold + cold.size()});
  Found found;
  auto scan = find_exits(parts);
  if (!scan) {
    found.error = scan.error().message;
    return found;
  }
  for (const ExitSite& e : scan->exits) {
    const uint64_t at = e.instruction.address;
    found.exits.push_back((at >= kStart ? "+" + std::to_string(at - kStart)
                                        : "cold+" + std::to_string(at - kCold)) +
                          ":" + exit_kind_name(e.kind));
  }
  found.notes = scan->notes;
  return found;
}

using Strings = std::vector<std::string>;

TEST(ExitFinder, EveryRetIsAnExit) {
  const Bytes code = {
      0x83, 0xff, 0x01,             // +0: cmp edi, 1
      0x7e, 0x07,                   // +3: jle +12 (inside)
      0x8d, 0x47, 0x01,             // +5: lea eax, [rdi+1]
      0xc3,                         // +8: ret
      0x0f, 0x1f, 0x00,             // +9: nop dword ptr [rax]
      0xb8, 0x01, 0x00, 0x00, 0x00, // +12: mov eax, 1
      0xf3, 0xc3,                   // +17: repz ret
      0xc2, 0x08, 0x00,             // +19: ret 8
  };
  const Found f = exits_of(code);
  EXPECT_EQ(f.error, "");
  EXPECT_EQ(f.exits, (Strings{"+8:ret", "+17:ret", "+19:ret"}));
  EXPECT_TRUE(f.notes.empty());
}

TEST(ExitFinder, JumpsOutsideAreTailCallsJumpsInsideAreNot) {
  const Bytes code = {
      0x85, 0xff,                   // +0: test edi, edi
      0x78, 0x05,                   // +2: js +9 (inside)
      0xeb, 0x10,                   // +4: jmp +22 (outside: the function is 20 bytes)
      0xeb, 0x01,                   // +6: jmp +9 (inside)
      0x90,                         // +8: nop
      0xe9, 0xf2, 0x0f, 0x00, 0x00, // +9: jmp rel32 to 0x402000 (outside)
      0xe9, 0xed, 0xff, 0xff, 0xff, // +14: jmp rel32 back to +0 (inside: a loop)
      0xc3,                         // +19: ret
  };
  const Found f = exits_of(code);
  EXPECT_EQ(f.error, "");
  EXPECT_EQ(f.exits, (Strings{"+4:tail jump", "+9:tail jump", "+19:ret"}));
}

TEST(ExitFinder, CallsAreNotExits) {
  const Bytes code = {
      0x55,                         // push rbp
      0xe8, 0x00, 0x00, 0x00, 0x00, // call (next): a call to anything returns here or never
      0x5d,                         // pop rbp
      0xc3,                         // ret
  };
  EXPECT_EQ(exits_of(code).exits, (Strings{"+7:ret"}));
}

TEST(ExitFinder, GotPointerJumpIsATailCall) {
  const Bytes code = {
      0x48, 0x85, 0xff,                   // +0: test rdi, rdi
      0x74, 0x06,                         // +3: je +11
      0xff, 0x25, 0x00, 0x10, 0x00, 0x00, // +5: jmp qword ptr [rip+0x1000]
      0xc3,                               // +11: ret
  };
  const Found f = exits_of(code);
  EXPECT_EQ(f.exits, (Strings{"+5:indirect jump", "+11:ret"}));
  EXPECT_TRUE(f.notes.empty());
}

TEST(ExitFinder, RegisterJumpBesideARetIsAJumpTable) {
  const Bytes code = {
      0x48, 0x8b, 0x04, 0xfe, // +0: mov rax, qword ptr [rsi+rdi*8]
      0xff, 0xe0,             // +4: jmp rax
      0xc3,                   // +6: ret
  };
  const Found f = exits_of(code);
  EXPECT_EQ(f.exits, (Strings{"+6:ret"}));
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_NE(f.notes[0].find("'jmp rax' at 0x401004 assumed to be a jump table"),
            std::string::npos)
      << f.notes[0];
}

TEST(ExitFinder, RegisterJumpWithNoOtherWayOutIsAnExit) {
  const Bytes code = {
      0x48, 0x8b, 0x07, // +0: mov rax, qword ptr [rdi]
      0xff, 0xe0,       // +3: jmp rax
  };
  const Found f = exits_of(code);
  EXPECT_EQ(f.exits, (Strings{"+3:indirect jump"}));
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_NE(f.notes[0].find("taken as an exit"), std::string::npos) << f.notes[0];
}

TEST(ExitFinder, ConditionalTailCallIsRefused) {
  const Bytes code = {
      0x85, 0xff,                         // +0: test edi, edi
      0x0f, 0x84, 0xf8, 0x0f, 0x00, 0x00, // +2: je rel32 to 0x402000 (outside)
      0xc3,                               // +8: ret
  };
  const Found f = exits_of(code);
  EXPECT_TRUE(f.exits.empty());
  EXPECT_NE(f.error.find("conditional tail call"), std::string::npos) << f.error;
}

TEST(ExitFinder, NoExitAtAllIsAnError) {
  const Bytes code = {
      0x55,                         // push rbp
      0x31, 0xff,                   // xor edi, edi
      0xe8, 0x00, 0x00, 0x00, 0x00, // call exit (never returns)
  };
  EXPECT_EQ(exits_of(code).error, "no ret or tail jump: the function never returns");
}

TEST(ExitFinder, ColdPartIsInsideAndItsExitsCount) {
  // The body jumps to its cold part, which returns by itself and also jumps back.
  const Bytes code = {
      0x85, 0xff,                         // +0: test edi, edi
      0x0f, 0x84, 0xf8, 0xf0, 0xff, 0xff, // +2: je rel32 to kCold (0x400100): inside
      0xc3,                               // +8: ret
  };
  const Bytes cold = {
      0x85, 0xf6,                         // cold+0: test esi, esi
      0x74, 0x01,                         // cold+2: je cold+5
      0xc3,                               // cold+4: ret
      0xe9, 0xfb, 0x0e, 0x00, 0x00,       // cold+5: jmp rel32 to kStart+5... back into the body
  };
  const Found f = exits_of(code, cold);
  EXPECT_EQ(f.error, "");
  EXPECT_EQ(f.exits, (Strings{"cold+4:ret", "+8:ret"}));
}

} // namespace
} // namespace dprobe::x86_64
