#include "probes/mechanism_planner.h"

#include <fmt/format.h>

#include "arch/x86_64/decoder.h"
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
    // A return probe's exit (a 1-byte ret) rarely has 5 bytes after it; the instructions
    // before it can make up the jump, their copies running before the probe.
    if (!site.exit_note.empty() && !function_code.empty()) {
      const uint64_t start = site.address - site.function_offset;
      auto insns = x86_64::decode_all(function_code, start);
      Result<x86_64::JumpPlan> back =
          insns ? x86_64::plan_jump_to_exit(*insns, start, start + function_code.size(),
                                            site.address)
                : Result<x86_64::JumpPlan>(fail("jump refused: function not fully decoded"));
      if (back) {
        const uint64_t first = back->replaced.front().address;
        for (uint64_t other : site.neighbours) {
          if (other >= first && other < site.address) {
            back = fail("jump refused: the probe at {:#x} lies in the {} bytes a jump would "
                        "replace",
                        other, back->length);
            break;
          }
          // An earlier site's own jump (planned forward from it, which takes precedence) may
          // reach into the instructions before this exit.
          if (other < first) {
            auto theirs = x86_64::plan_jump(*insns, start, start + function_code.size(), other);
            if (theirs && other + theirs->length > first) {
              back = fail("jump refused: the jump of the probe at {:#x} would replace bytes "
                          "before the exit",
                          other);
              break;
            }
          }
        }
      }
      if (back) {
        choice.mechanism = Mechanism::Jump;
        choice.reason = fmt::format("replaces {} bytes ({}), the {} before the exit run first",
                                    back->length, describe_run(back->replaced), back->run_before);
        choice.replaced = std::move(back->replaced);
        choice.run_before = back->run_before;
        return choice;
      }
      jump_refusal += fmt::format(", and with the instructions before it: {}",
                                  back.error().message);
    }
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

void apply_choice(ProbeSite& site, MechanismChoice choice) {
  site.mechanism = choice.mechanism;
  site.mechanism_reason = std::move(choice.reason);
  site.replaced = std::move(choice.replaced);
  site.run_before = choice.run_before;
  if (site.run_before == 0 || site.replaced.empty()) return;
  const x86_64::Instruction& first = site.replaced.front();
  const uint64_t back = site.address - first.address;
  site.exit_address = site.address;
  site.address = first.address;
  site.file_vaddr -= back;
  site.function_offset -= back;
  site.instruction = first;
}

}  // namespace dprobe::probes
