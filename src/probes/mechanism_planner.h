// plan: picks, for each site, the fastest mechanism that is safe there, and says why.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "probes/probe_site.h"

namespace dprobe::probes {

struct MechanismChoice {
  Mechanism mechanism = Mechanism::Int3Ptrace;
  std::string reason;                          ///< one line, printed by -v
  std::vector<x86_64::Instruction> replaced;   ///< Jump only
  std::size_t run_before = 0;                  ///< Jump on an exit: see ProbeSite::run_before
};

/// `function_code`: the containing function's bytes as in the file; the function starts at
/// run-time address site.address - site.function_offset. Empty when the function is unknown.
/// `agent_problem`: why the in-target agent cannot be used ("" when it can).
/// `forced`: --mechanism; an error when that mechanism is not safe at this site.
[[nodiscard]] Result<MechanismChoice> choose_mechanism(const ProbeSite& site,
                                                       std::span<const uint8_t> function_code,
                                                       const std::string& agent_problem,
                                                       std::optional<Mechanism> forced);

/// Records `choice` in `site`. A jump on an exit that starts at an earlier instruction moves the
/// site there (address, instruction, offsets), since the patch and its undoing start there.
void apply_choice(ProbeSite& site, MechanismChoice choice);

}  // namespace dprobe::probes
