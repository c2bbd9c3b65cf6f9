// Decode random bytes, relocate whatever is accepted, re-decode the copy and check that it
// keeps the original's meaning (deterministic seed: a regression test, not an open fuzzer).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/jump_planner.h"
#include "arch/x86_64/plan.h"
#include "arch/x86_64/relocator.h"
#include "arch/x86_64/trampoline_writer.h"
#include "arch/x86_64/writer.h"

namespace dprobe::x86_64 {
namespace {

constexpr uint64_t kFrom = 0x555555551000;

TEST(RelocatorFuzz, RandomInstructionsKeepTheirMeaning) {
  std::mt19937_64 rng(20240611);
  const uint64_t destinations[] = {kFrom + 0x1000, kFrom - 0x7fff0000, kFrom + 0x100000000};
  int relocated = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::vector<uint8_t> bytes(kMaxInstructionLength);
    for (auto& b : bytes)
      b = static_cast<uint8_t>(rng());
    auto insn = decode(bytes, kFrom);
    if (!insn) continue;
    uint64_t to = destinations[iteration % 3];
    SCOPED_TRACE(fmt::format("{} at {:#x} -> {:#x}", insn->text, kFrom, to));
    auto plan = plan_relocation(*insn);
    auto out = relocate(*insn, to);
    if (!out) {
      EXPECT_EQ(out.error().message.rfind(fmt::format("{:#x}: cannot relocate '", kFrom), 0), 0u)
          << out.error().message;
      continue;
    }
    ASSERT_TRUE(plan.has_value());
    ++relocated;
    ASSERT_LE(out->code.size(), max_relocated_size(1));
    ASSERT_GE(out->resume_jump, to);
    ASSERT_LT(out->resume_jump, to + out->code.size());

    auto copy = decode(out->code, to);
    ASSERT_TRUE(copy.has_value()) << copy.error().text();
    EXPECT_EQ(copy->length, out->first_length);
    switch (plan->fixup) {
    case Fixup::kVerbatim:
    case Fixup::kSyscall:
      EXPECT_EQ(std::vector<uint8_t>(out->code.begin(), out->code.begin() + insn->length),
                std::vector<uint8_t>(insn->code().begin(), insn->code().end()));
      break;
    case Fixup::kRipRelative: {
      EXPECT_EQ(copy->length, insn->length);
      auto copy_plan = plan_relocation(*copy);
      ASSERT_TRUE(copy_plan.has_value()) << copy_plan.error().text();
      EXPECT_EQ(copy_plan->memory_address, plan->memory_address);
      break;
    }
    case Fixup::kJmp:
    case Fixup::kJcc:
      // The far forms (jmp [rip+0]; inverted jcc over it) have no comparable rel target.
      if (copy->branch_target && out->first_length != 2) {
        EXPECT_EQ(*copy->branch_target, plan->target);
      }
      break;
    default:
      break;
    }
  }
  EXPECT_GT(relocated, 5000) << "the corpus should exercise the relocator";
}

TEST(JumpPlannerFuzz, AcceptedPlansMakeTrampolines) {
  // Random "functions": every accepted site must give a trampoline, and no branch of the
  // function from outside the run may land strictly inside it.
  std::mt19937_64 rng(20240612);
  int accepted = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::vector<uint8_t> bytes(24);
    for (auto& b : bytes)
      b = static_cast<uint8_t>(rng());
    auto insns = decode_all(bytes, kFrom);
    if (!insns) continue;
    for (const Instruction& at : *insns) {
      SCOPED_TRACE(fmt::format("site {} '{}'", format_address(at.address), at.text));
      auto plan = plan_jump(*insns, kFrom, kFrom + bytes.size(), at.address);
      if (!plan) {
        EXPECT_EQ(plan.error().message.rfind("jump refused: ", 0), 0u) << plan.error().message;
        continue;
      }
      ++accepted;
      ASSERT_GE(plan->length, kJmpRel32Length);
      ASSERT_FALSE(plan->replaced.empty());
      EXPECT_EQ(plan->replaced.front().address, at.address);
      const uint64_t end = at.address + plan->length;
      EXPECT_EQ(plan->replaced.back().end(), end);
      EXPECT_LT(plan->length - plan->replaced.back().length, kJmpRel32Length) << "one too many";
      for (const Instruction& insn : *insns) {
        if (insn.address >= at.address && insn.address < end) continue;
        if (insn.branch_target) {
          EXPECT_FALSE(*insn.branch_target > at.address && *insn.branch_target < end);
        }
      }
      TrampolineSpec spec;
      spec.address = kFrom + 0x10000;
      spec.dispatch = kFrom + 0x20000;
      spec.replaced = plan->replaced;
      auto t = write_trampoline(spec);
      ASSERT_TRUE(t.has_value()) << t.error().text();
      EXPECT_LE(t->code.size(), max_trampoline_size(plan->replaced.size()));
      ASSERT_EQ(t->address_map.size(), plan->replaced.size());
      for (std::size_t i = 0; i < plan->replaced.size(); ++i) {
        EXPECT_EQ(t->address_map[i].first, plan->replaced[i].address);
        EXPECT_GE(t->address_map[i].second, t->relocated_start);
        EXPECT_LT(t->address_map[i].second, spec.address + t->code.size());
      }
      EXPECT_EQ(encode_jump_patch(*plan, spec.address).size(), plan->length);
    }
  }
  EXPECT_GT(accepted, 200) << "the corpus should exercise the planner";
}

} // namespace
} // namespace dprobe::x86_64
