#include "arch/x86_64/exit_finder.h"

#include <algorithm>

#include <fmt/format.h>

namespace dprobe::x86_64 {
namespace {

bool inside_any(std::span<const FunctionPart> parts, uint64_t address) {
  return std::any_of(parts.begin(), parts.end(), [&](const FunctionPart& p) {
    return address >= p.start && address < p.end;
  });
}

/// `jmp qword ptr [rip+disp]`: FF /4 with ModRM mod=00 rm=101, after optional prefixes.
bool is_rip_pointer_jump(const Instruction& insn) {
  return insn.is_rip_relative && insn.text.find('[') != std::string::npos;
}

} // namespace

const char* exit_kind_name(ExitKind kind) {
  switch (kind) {
  case ExitKind::Return:
    return "ret";
  case ExitKind::TailJump:
    return "tail jump";
  case ExitKind::IndirectJump:
    return "indirect jump";
  }
  return "?";
}

Result<ExitScan> find_exits(std::span<const FunctionPart> parts) {
  ExitScan scan;
  std::vector<ExitSite> ambiguous; // indirect jumps that may be jump tables
  for (const FunctionPart& part : parts) {
    for (const Instruction& insn : part.instructions) {
      if (insn.is_ret) {
        scan.exits.push_back({insn, ExitKind::Return});
        continue;
      }
      if (insn.is_call) continue;
      if (insn.is_unconditional_jump) {
        if (insn.is_relative_branch) {
          if (insn.branch_target && !inside_any(parts, *insn.branch_target)) {
            scan.exits.push_back({insn, ExitKind::TailJump});
          }
        } else if (is_rip_pointer_jump(insn)) {
          scan.exits.push_back({insn, ExitKind::IndirectJump});
        } else {
          ambiguous.push_back({insn, ExitKind::IndirectJump});
        }
        continue;
      }
      if (insn.is_relative_branch && insn.branch_target &&
          !inside_any(parts, *insn.branch_target)) {
        return fail("conditional tail call '{}' at {}: a probe before it would also fire when it "
                    "falls through, so its returns cannot be counted exactly",
                    insn.text, format_address(insn.address));
      }
    }
  }
  if (scan.exits.empty() && !ambiguous.empty()) {
    // No other way out: these indirect jumps must be how the function leaves.
    for (ExitSite& site : ambiguous) {
      scan.notes.push_back(fmt::format("'{}' at {} taken as an exit: the function has no other",
                                       site.instruction.text,
                                       format_address(site.instruction.address)));
      scan.exits.push_back(std::move(site));
    }
  } else {
    for (const ExitSite& site : ambiguous) {
      scan.notes.push_back(fmt::format("'{}' at {} assumed to be a jump table inside the function, "
                                       "not an exit",
                                       site.instruction.text,
                                       format_address(site.instruction.address)));
    }
  }
  if (scan.exits.empty()) return fail("no ret or tail jump: the function never returns");
  std::sort(scan.exits.begin(), scan.exits.end(), [](const ExitSite& a, const ExitSite& b) {
    return a.instruction.address < b.instruction.address;
  });
  return scan;
}

} // namespace dprobe::x86_64
