// Decides whether a probe site can be jump-optimized: which whole instructions a `jmp rel32`
// overwrites, or a one-line reason why it must stay an int3 probe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "common/result.h"

namespace dprobe::x86_64 {

struct JumpPlan {
  std::vector<Instruction> replaced; ///< whole instructions from the site, in order
  uint64_t length = 0;               ///< their total size, >= 5
  /// The site is the function's first byte: the SysV ABI leaves the status flags undefined and
  /// DF clear there, so the trampoline need not restore the flags (TrampolineSpec::save_flags).
  bool at_function_entry = false;
  /// How many of `replaced` run before the probe fires (plan_jump_to_exit): the trampoline runs
  /// their copies first, then the handler, then the rest. 0 for an ordinary plan.
  std::size_t run_before = 0;
};

/// Plans a jump at `site` inside the function [function_start, function_end), given every
/// instruction of it (decode_all from its symbol's start over its size). Refusals, each one line
/// starting "jump refused: ":
///  - the instructions do not cover the function exactly (it could not be fully decoded);
///  - `site` is outside the function or not at one of its instruction boundaries;
///  - fewer than 5 bytes from the site to the function's end;
///  - a ret/jmp/ud2/hlt ends the flow before 5 bytes are covered (what follows may be another
///    function, padding or data);
///  - relocate_block refuses the run (a call that is not last, a RIP-relative operand into the
///    run, an instruction that cannot move, ...);
///  - an indirect jump anywhere in the function (a jump table may land inside the run);
///  - a relative branch or call of the function, outside the run, landing strictly inside
///    (site, site + length). Branches of the run itself are re-aimed at the copy.
/// `other_code`: more instructions that may branch into the function and are checked the same
/// way, e.g. its hot/cold split part (GCC's "foo.cold" jumps back into the middle of foo).
/// Not detectable here: branches from other functions into the middle of this one, and data in
/// text that happens to decode.
[[nodiscard]] Result<JumpPlan> plan_jump(std::span<const Instruction> function,
                                         uint64_t function_start, uint64_t function_end,
                                         uint64_t site,
                                         std::span<const Instruction> other_code = {});

/// A jump for a probe on an exit instruction (`ret`, tail-call `jmp`) that is too short for one
/// by itself: the run is the whole instructions just before the exit plus the exit, at least 5
/// bytes, and the probe still fires right before the exit (run_before = how many come first).
/// Refused like plan_jump, and also when one of the instructions before the exit branches,
/// calls or ends the flow, or when any branch of the function lands inside the run after its
/// first byte (the exit itself included).
[[nodiscard]] Result<JumpPlan> plan_jump_to_exit(std::span<const Instruction> function,
                                                 uint64_t function_start, uint64_t function_end,
                                                 uint64_t exit_site);

/// Same from the function's bytes; a decoding failure is a refusal.
[[nodiscard]] Result<JumpPlan> plan_jump_in(std::span<const uint8_t> function_code,
                                            uint64_t function_start, uint64_t site);

/// The bytes to write at the site: `jmp rel32` to `trampoline`, then int3 over the rest of the
/// replaced bytes (nothing may run them; if something does, it traps instead of running half an
/// instruction). Empty when the trampoline is out of reach.
[[nodiscard]] std::vector<uint8_t> encode_jump_patch(const JumpPlan& plan, uint64_t trampoline);

} // namespace dprobe::x86_64
