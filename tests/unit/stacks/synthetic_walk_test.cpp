// abi::walk_stack on hand-made unwind tables and a hand-made stack: each rule, each way a walk
// must stop (loops, faults, outermost frames, absurd offsets), and signal frames.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "abi/unwind.h"
#include "stacks/cfi_rows.h"

namespace dprobe::stacks {
namespace {

/// Target memory: 8-byte words at the addresses set; anything else faults.
struct Memory {
  std::map<uint64_t, uint64_t> words;
  uint64_t reads = 0;
  bool read(uint64_t address, uint64_t* word) {
    ++reads;
    auto it = words.find(address);
    if (it == words.end()) return false;
    *word = it->second;
    return true;
  }
};

abi::UnwindRow row(uint32_t pc, abi::UnwindRule rule, int32_t cfa_offset = 0,
                   int16_t rbp_offset = 0) {
  return abi::UnwindRow{pc, cfa_offset, rbp_offset, static_cast<uint8_t>(rule), 0};
}

/// One module at [0x400000, 0x500000), link-time addresses = runtime addresses.
struct Tables {
  std::vector<abi::UnwindRow> rows;
  std::vector<abi::UnwindModule> modules;
  explicit Tables(std::vector<abi::UnwindRow> r) : rows(std::move(r)) {
    modules.push_back(abi::UnwindModule{0x400000, 0x500000, 0, 0,
                                        static_cast<uint32_t>(rows.size())});
  }
  [[nodiscard]] abi::UnwindView view() const {
    return abi::UnwindView{modules.data(), static_cast<uint32_t>(modules.size()), rows.data(),
                           static_cast<uint32_t>(rows.size())};
  }
};

std::vector<uint64_t> walk(const abi::UnwindView& view, abi::StackStart start, Memory& memory,
                           uint32_t max_frames = abi::kMaxStackFrames, uint32_t skip = 0) {
  std::vector<uint64_t> frames(abi::kMaxStackFrames);
  const uint32_t depth = abi::walk_stack(
      view, start, [&memory](uint64_t a, uint64_t* w) { return memory.read(a, w); },
      frames.data(), max_frames, skip);
  frames.resize(depth);
  return frames;
}

// Functions: f at 0x401000 (CFA = rsp + 16 after its push), g at 0x402000 (CFA = rsp + 8, a
// leaf), main at 0x403000 (CFA = rbp + 16, rbp saved at CFA - 16), _start at 0x404000.
const Tables kTables({row(0x401000, abi::kUnwindCfaRsp, 16), row(0x401100, abi::kUnwindNoInfo),
                      row(0x402000, abi::kUnwindCfaRsp, 8), row(0x402100, abi::kUnwindNoInfo),
                      row(0x403000, abi::kUnwindCfaRbp, 16, -16),
                      row(0x403100, abi::kUnwindNoInfo), row(0x404000, abi::kUnwindOutermost),
                      row(0x404100, abi::kUnwindNoInfo)});

TEST(SyntheticWalk, AppliesEachRuleUpToTheOutermostFrame) {
  Memory m;
  // In f (rsp 0x7000): returns into g at 0x402010; g returns into main at 0x403020; main's
  // frame (rbp 0x7100) returns into _start at 0x404010.
  m.words[0x7000 + 16 - 8] = 0x402010; // f's CFA 0x7010
  m.words[0x7010 + 8 - 8] = 0x403020;  // g's CFA 0x7018
  m.words[0x7100 + 16 - 8] = 0x404010; // main's CFA = rbp + 16 = 0x7110
  m.words[0x7110 - 16] = 0x7200;       // main's caller's rbp
  EXPECT_EQ(walk(kTables.view(), {0x401010, 0x7000, 0x7100}, m),
            (std::vector<uint64_t>{0x401010, 0x402010, 0x403020, 0x404010}));
}

TEST(SyntheticWalk, SkipsAndStopsAtMaxFrames) {
  Memory m;
  m.words[0x7008] = 0x402010;
  m.words[0x7010] = 0x403020;
  EXPECT_EQ(walk(kTables.view(), {0x401010, 0x7000, 0}, m, 1, 1),
            (std::vector<uint64_t>{0x402010}));
  EXPECT_EQ(walk(kTables.view(), {0x401010, 0x7000, 0}, m, 2),
            (std::vector<uint64_t>{0x401010, 0x402010}));
  EXPECT_TRUE(walk(kTables.view(), {0x401010, 0x7000, 0}, m, 0).empty());
}

TEST(SyntheticWalk, ACfaThatDoesNotGrowStops) {
  Memory m;
  // CFA = rsp + 0 (or below): the "caller" would be at or under this frame.
  for (int32_t offset : {0, -8, -4096}) {
    const Tables tables({row(0x401000, abi::kUnwindCfaRsp, offset)});
    m.words.clear();
    m.words[0x7000 + offset - 8] = 0x401010; // a return address into the same frame
    EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, 0}, m),
              (std::vector<uint64_t>{0x401010}))
        << offset;
  }
  // A frame-pointer chain that points at itself, or down the stack.
  const abi::UnwindView none{nullptr, 0, nullptr, 0};
  m.words.clear();
  m.words[0x7100] = 0x7100;
  m.words[0x7108] = 0x401010;
  EXPECT_EQ(walk(none, {0x409000, 0x7000, 0x7100}, m),
            (std::vector<uint64_t>{0x409000, 0x401010}));
  EXPECT_EQ(walk(none, {0x409000, 0x7200, 0x7100}, m), (std::vector<uint64_t>{0x409000}));
}

TEST(SyntheticWalk, NoInfoAndUnknownCodeFollowTheFramePointer) {
  Memory m;
  m.words[0x7100] = 0x7200;    // caller's rbp
  m.words[0x7108] = 0x401010;  // return address into f
  m.words[0x7110 + 8] = 0x403020; // f's CFA = rsp (0x7110) + 16
  // 0x401200 has a NoInfo row; 0x600000 is in no module.
  for (uint64_t pc : {uint64_t{0x401200}, uint64_t{0x600000}}) {
    EXPECT_EQ(walk(kTables.view(), {pc, 0x7000, 0x7100}, m),
              (std::vector<uint64_t>{pc, 0x401010, 0x403020}));
  }
}

TEST(SyntheticWalk, StopsAtTheFirstFault) {
  Memory m;
  EXPECT_EQ(walk(kTables.view(), {0x401010, 0x7000, 0}, m), (std::vector<uint64_t>{0x401010}));
  // main saves rbp where nothing is readable.
  m.words[0x7100 + 8] = 0x404010;
  EXPECT_EQ(walk(kTables.view(), {0x403010, 0x7000, 0x7100}, m),
            (std::vector<uint64_t>{0x403010}));
}

TEST(SyntheticWalk, HugeOffsetsAndWrappingAddressesEndTheWalk) {
  Memory m;
  for (int32_t cfa : {std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}) {
    for (int16_t rbp : {int16_t{0}, std::numeric_limits<int16_t>::max(),
                        std::numeric_limits<int16_t>::min()}) {
      const Tables tables({row(0x401000, abi::kUnwindCfaRbp, cfa, rbp)});
      for (uint64_t frame : {uint64_t{0}, uint64_t{8}, ~uint64_t{0} - 7}) {
        EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, frame}, m).size(), 1u);
      }
    }
  }
  // A module whose rows lie past the row table: no row, the frame-pointer chain instead.
  std::vector<abi::UnwindRow> rows{row(0x401000, abi::kUnwindOutermost)};
  for (auto [first, count] : {std::pair<uint32_t, uint32_t>{0, 2}, {1, 1}, {2, 0},
                              {~0u, 2}, {1, ~0u}}) {
    abi::UnwindModule module{0x400000, 0x500000, 0, first, count};
    const abi::UnwindView view{&module, 1, rows.data(), 1};
    EXPECT_EQ(abi::find_unwind_row(view, 0x401010), nullptr);
  }
}

TEST(SyntheticWalk, AReturnAddressIsLookedUpAtItsCall) {
  // h's last instruction calls a noreturn function: its return address is the first byte of
  // _start's rows, which would end the walk.
  const Tables tables({row(0x401000, abi::kUnwindCfaRsp, 8), row(0x401100, abi::kUnwindOutermost),
                       row(0x401200, abi::kUnwindNoInfo)});
  Memory m;
  m.words[0x7000] = 0x401100; // leaf at 0x401010 returns to 0x401100, h's caller ...
  m.words[0x7008] = 0x402010;
  EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, 0}, m),
            (std::vector<uint64_t>{0x401010, 0x401100, 0x402010}));
  // The probed instruction itself is looked up as it is.
  EXPECT_EQ(walk(tables.view(), {0x401100, 0x7000, 0}, m), (std::vector<uint64_t>{0x401100}));
}

TEST(SyntheticWalk, SignalFramesResumeAtTheInterruptedInstruction) {
  // A handler (CFA = rsp + 8) returns into the signal trampoline at 0x405000, whose rsp is the
  // kernel's ucontext_t. The signal interrupted 0x402000, the first instruction of g (exactly:
  // pc - 1 would land in the Outermost row before it), with rsp 0x8000, rbp 0x8800.
  const Tables tables({row(0x401000, abi::kUnwindCfaRsp, 8), row(0x401ff0, abi::kUnwindOutermost),
                       row(0x402000, abi::kUnwindCfaRsp, 8), row(0x402100, abi::kUnwindNoInfo),
                       row(0x404fff, abi::kUnwindSignalFrame), row(0x405100, abi::kUnwindNoInfo)});
  Memory m;
  m.words[0x7000] = 0x405000; // the handler's return address: the trampoline
  const uint64_t uc = 0x7008;
  m.words[uc + abi::kSignalRipOffset] = 0x402000;
  m.words[uc + abi::kSignalRspOffset] = 0x8000;
  m.words[uc + abi::kSignalRbpOffset] = 0x8800;
  m.words[0x8000] = 0x401020; // g's return address
  EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, 0}, m),
            (std::vector<uint64_t>{0x401010, 0x405000, 0x402000, 0x401020}));
  // On an alternate signal stack the interrupted rsp may lie below the handler's.
  m.words[uc + abi::kSignalRspOffset] = 0x6000;
  m.words[0x6000] = 0x401020;
  EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, 0}, m),
            (std::vector<uint64_t>{0x401010, 0x405000, 0x402000, 0x401020}));
  // An unreadable context ends the walk at the trampoline.
  m.words.erase(uc + abi::kSignalRspOffset);
  EXPECT_EQ(walk(tables.view(), {0x401010, 0x7000, 0}, m),
            (std::vector<uint64_t>{0x401010, 0x405000}));
}

TEST(SyntheticWalk, AHugeSkipIsBounded) {
  // An endless, ever-rising frame-pointer chain: the walk must still take a bounded number of
  // steps whatever skip it is given.
  const abi::UnwindView none{nullptr, 0, nullptr, 0};
  uint64_t reads = 0;
  std::vector<uint64_t> frames(abi::kMaxStackFrames);
  const uint32_t depth = abi::walk_stack(
      none, {0x409000, 0x7000, 0x7000},
      [&reads](uint64_t address, uint64_t* word) {
        if (++reads > 100000) return false; // give up: the walk did not bound itself
        *word = address % 16 == 0 ? address + 16 : 0x409000;
        return true;
      },
      frames.data(), 4, std::numeric_limits<uint32_t>::max());
  EXPECT_LE(reads, 2u * (abi::kMaxStackFrames + 4));
  EXPECT_EQ(depth, 4u);
}

TEST(CfiRowsAppend, RowsStaySortedAndMerged) {
  CfiRows out;
  append_row(out, row(0x1000, abi::kUnwindCfaRsp, 8));
  append_row(out, row(0x1004, abi::kUnwindCfaRsp, 8));  // same rule: merged
  append_row(out, row(0x1008, abi::kUnwindCfaRsp, 16));
  append_row(out, row(0x1008, abi::kUnwindCfaRbp, 16)); // same pc: replaced
  append_row(out, row(0x0800, abi::kUnwindCfaRsp, 24)); // an overlapping FDE's row: dropped
  append_row(out, row(0x1010, abi::kUnwindNoInfo));
  ASSERT_EQ(out.rows.size(), 3u);
  EXPECT_EQ(out.rows[0].pc, 0x1000u);
  EXPECT_EQ(out.rows[1].pc, 0x1008u);
  EXPECT_EQ(out.rows[1].rule, abi::kUnwindCfaRbp);
  EXPECT_EQ(out.rows[2].pc, 0x1010u);
}

} // namespace
} // namespace dprobe::stacks
