#include "probes/mechanism_planner.h"

#include <fmt/format.h>

#include "arch/x86_64/jump_planner.h"
#include "arch/x86_64/relocator.h"

namespace dprobe::probes {
namespace {

std::string describe_run(std::span<const x86_64::Instruction> insns) {
  std::vector<std::string> texts;
  for (const auto& insn : insns) texts.push_back(insn.text);
  return fmt::format("{}", fmt::join(texts, "; "));
}

}  // namespace

Result<MechanismChoice> choose_mechanism(const ProbeSite& site,
                                         std::span<const uint8_t> function_code,
                                         const std::string& agent_problem,
                                         std::optional<Mechanism> forced) {
  const std::string& name = site.probe_names.front();
  MechanismChoice choice;

  if (forced == Mechanism::Int3Ptrace) {
    choice.reason = "chosen with --mechanism";
    return choice;
  }
  if (!agent_problem.empty()) {
    if (forced) {
      return fail("{}: --mechanism {} needs the in-target agent: {}", name,
                  mechanism_name(*forced), agent_problem);
    }
    choice.reason = fmt::format("in-target agent unavailable: {}", agent_problem);
    return choice;
  }

  std::string jump_refusal;
  if (forced != Mechanism::Int3Boost) {
    Result<x86_64::JumpPlan> plan =
        function_code.empty()
            ? Result<x86_64::JumpPlan>(fail("jump refused: the containing function is unknown"))
            : x86_64::plan_jump_in(function_code, site.address - site.function_offset,
                                   site.address);
    if (plan) {
      // Another site inside the bytes the jump replaces would be overwritten, or never reached
      // (its copy runs in the trampoline): that one needs the int3 here.
      for (uint64_t other : site.neighbours) {
        if (other > site.address && other < site.address + plan->length) {
          plan = fail("jump refused: the probe at {:#x} lies in the {} bytes a jump would replace",
                      other, plan->length);
          break;
        }
      }
    }
    if (plan) {
      choice.mechanism = Mechanism::Jump;
      choice.reason = fmt::format("replaces {} bytes ({})", plan->length, describe_run(plan->replaced));
      choice.replaced = std::move(plan->replaced);
      return choice;
    }
    jump_refusal = plan.error().message;
    if (forced == Mechanism::Jump) return fail("{}: {}", name, jump_refusal);
  }

  if (auto ok = x86_64::can_relocate(site.instruction); !ok) {
    return fail("{}: {}", name, ok.error().message);
  }
  choice.mechanism = Mechanism::Int3Boost;
  choice.reason = forced ? std::string("chosen with --mechanism")
                         : fmt::format("{}; int3 handled in the target", jump_refusal);
  return choice;
}

}  // namespace dprobe::probes
