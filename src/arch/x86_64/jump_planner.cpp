#include "arch/x86_64/jump_planner.h"

#include <fmt/format.h>

#include "arch/x86_64/relocator.h"
#include "arch/x86_64/writer.h"

namespace dprobe::x86_64 {

namespace {

constexpr uint64_t kNeeded = kJmpRel32Length;

std::unexpected<Error> refuse(std::string_view reason) {
  return fail("jump refused: {}", reason);
}

/// The instructions must tile [start, end) exactly, or some bytes were skipped or misread.
Status check_coverage(std::span<const Instruction> function, uint64_t start, uint64_t end) {
  uint64_t expected = start;
  for (const Instruction& insn : function) {
    if (insn.address != expected) {
      return refuse(fmt::format("function not fully decoded: expected an instruction at {}, "
                                "found one at {}",
                                format_address(expected), format_address(insn.address)));
    }
    expected = insn.end();
  }
  if (expected != end) {
    return refuse(fmt::format("function not fully decoded: instructions end at {}, the function "
                              "at {}",
                              format_address(expected), format_address(end)));
  }
  return {};
}

bool is_indirect_jump(const Instruction& insn) {
  return insn.is_unconditional_jump && !insn.is_relative_branch;
}

/// Indirect jumps and branches into (site, end) among `code`, skipping the run itself.
Status check_branches_into(std::span<const Instruction> code, uint64_t site, uint64_t end) {
  for (const Instruction& insn : code) {
    if (insn.address >= site && insn.address < end) continue; // relocated with the run
    if (is_indirect_jump(insn)) {
      return refuse(fmt::format("indirect jump '{}' at {} (a jump table?) may land in the "
                                "replaced bytes",
                                insn.text, format_address(insn.address)));
    }
    if (insn.branch_target && *insn.branch_target > site && *insn.branch_target < end) {
      return refuse(fmt::format("'{}' at {} branches into the replaced bytes ({})", insn.text,
                                format_address(insn.address), format_address(*insn.branch_target)));
    }
  }
  return {};
}

} // namespace

Result<JumpPlan> plan_jump(std::span<const Instruction> function, uint64_t function_start,
                           uint64_t function_end, uint64_t site,
                           std::span<const Instruction> other_code) {
  if (site < function_start || site >= function_end) {
    return refuse(fmt::format("probe {} is outside the function [{}, {})", format_address(site),
                              format_address(function_start), format_address(function_end)));
  }
  if (auto s = check_coverage(function, function_start, function_end); !s) {
    return std::unexpected(s.error());
  }
  if (function_end - site < kNeeded) {
    if (site == function_start) {
      return refuse(fmt::format("function is {} bytes, a jump needs {}",
                                function_end - function_start, kNeeded));
    }
    return refuse(fmt::format("{} bytes from the probe ({}) to the function's end, a jump needs {}",
                              function_end - site, format_address(site), kNeeded));
  }

  std::size_t first = 0;
  while (first < function.size() && function[first].address < site)
    ++first;
  if (first == function.size() || function[first].address != site) {
    return refuse(fmt::format("probe {} is not at an instruction boundary", format_address(site)));
  }

  JumpPlan plan;
  plan.at_function_entry = site == function_start;
  // function_end - site >= 5 and the instructions tile the function: the loop covers 5 bytes.
  for (std::size_t i = first; plan.length < kNeeded; ++i) {
    const Instruction& insn = function[i];
    plan.replaced.push_back(insn);
    plan.length += insn.length;
    if (insn.ends_flow && plan.length < kNeeded) {
      return refuse(fmt::format("'{}' at {} ends the flow after {} bytes, a jump needs {}",
                                insn.text, format_address(insn.address), plan.length, kNeeded));
    }
  }

  // A dry run where distances are no issue: the refusals left are about the run itself.
  if (auto dry = relocate_block(plan.replaced, site); !dry) {
    return refuse(dry.error().message);
  }

  const uint64_t end = site + plan.length;
  if (auto s = check_branches_into(function, site, end); !s) return std::unexpected(s.error());
  if (auto s = check_branches_into(other_code, site, end); !s) return std::unexpected(s.error());
  return plan;
}

Result<JumpPlan> plan_jump_to_exit(std::span<const Instruction> function, uint64_t function_start,
                                   uint64_t function_end, uint64_t exit_site) {
  if (auto s = check_coverage(function, function_start, function_end); !s) {
    return std::unexpected(s.error());
  }
  std::size_t exit = 0;
  while (exit < function.size() && function[exit].address != exit_site)
    ++exit;
  if (exit == function.size()) {
    return refuse(fmt::format("exit {} is not at an instruction boundary of the function",
                              format_address(exit_site)));
  }
  JumpPlan plan;
  plan.length = function[exit].length;
  std::size_t first = exit;
  while (plan.length < kNeeded) {
    if (first == 0) {
      return refuse(fmt::format("{} bytes from the function's start to the end of the exit at {}, "
                                "a jump needs {}",
                                plan.length, format_address(exit_site), kNeeded));
    }
    const Instruction& before = function[first - 1];
    // Copies of these run in the trampoline before the handler: plain instructions only (a
    // call would leave a return address into the replaced bytes).
    if (before.is_call || before.is_relative_branch || before.is_unconditional_jump ||
        before.ends_flow || before.text.starts_with("syscall")) {
      return refuse(fmt::format("'{}' at {} comes {} bytes before the exit at {}, a jump needs {}",
                                before.text, format_address(before.address), plan.length,
                                format_address(exit_site), kNeeded));
    }
    --first;
    plan.length += before.length;
  }
  plan.replaced.assign(function.begin() + static_cast<std::ptrdiff_t>(first),
                       function.begin() + static_cast<std::ptrdiff_t>(exit) + 1);
  plan.run_before = exit - first;
  const uint64_t site = plan.replaced.front().address;
  plan.at_function_entry = site == function_start;
  if (auto dry = relocate_block(plan.replaced, site); !dry) return refuse(dry.error().message);
  if (auto s = check_branches_into(function, site, site + plan.length); !s) {
    return std::unexpected(s.error());
  }
  return plan;
}

Result<JumpPlan> plan_jump_in(std::span<const uint8_t> function_code, uint64_t function_start,
                              uint64_t site) {
  auto insns = decode_all(function_code, function_start);
  if (!insns) {
    return refuse(
        fmt::format("function not fully decoded (data in text?): {}", insns.error().message));
  }
  return plan_jump(*insns, function_start, function_start + function_code.size(), site);
}

std::vector<uint8_t> encode_jump_patch(const JumpPlan& plan, uint64_t trampoline) {
  if (plan.replaced.empty()) return {};
  std::vector<uint8_t> bytes = encode_jmp_rel32(plan.replaced.front().address, trampoline);
  if (bytes.empty()) return {};
  bytes.resize(plan.length, kInt3);
  return bytes;
}

} // namespace dprobe::x86_64
