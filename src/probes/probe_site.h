// A probe site: one instruction in one process where one or more probe programs run.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/relocator.h"

namespace dprobe::probes {

/// How a site is reached when a thread executes it.
enum class Mechanism {
  Jump,        ///< jmp rel32 to a trampoline that calls the in-target agent: no trap at all
  Int3Boost,   ///< int3 handled by the agent's SIGTRAP handler; boosted copy jumps back
  Int3Ptrace,  ///< int3 trap reported to dprobe through ptrace; copy single-stepped out of line
};

/// Parses "jump", "int3-boost", "int3-ptrace".
[[nodiscard]] std::optional<Mechanism> parse_mechanism(std::string_view name);

[[nodiscard]] const char* mechanism_name(Mechanism m);

/// spec -> site: where an attach point landed in a process, and what runs there.
struct ProbeSite {
  std::vector<std::string> probe_names;  ///< attach points as written, in script order
  std::vector<uint32_t> programs;        ///< program indices, run in this order on a hit
  /// Per probe name: true when it is an exit of a return probe other than its first one, so
  /// that "Attaching N probes" counts a uretprobe once, as bpftrace does. Empty: all false.
  std::vector<bool> repeat_exit;
  std::string exit_note;                 ///< return probes: which exit this is (for -v)
  /// Run-time addresses of the other sites in the same function: a jump here must not replace
  /// their bytes (a return probe's ret is often within 5 bytes of an entry probe).
  std::vector<uint64_t> neighbours;
  std::string file_path;                 ///< absolute path of the probed file
  std::string function;                  ///< containing function ("" when unknown)
  uint64_t function_offset = 0;
  uint64_t function_size = 0;            ///< 0 when unknown
  std::vector<uint8_t> function_code;    ///< the function's bytes as in the file (empty: unknown)
  uint64_t file_vaddr = 0;               ///< link-time address in the file
  uint64_t address = 0;                  ///< run-time address in the target
  x86_64::Instruction instruction;       ///< the original instruction, at `address`
  Mechanism mechanism = Mechanism::Int3Ptrace;
  std::string mechanism_reason;          ///< why this mechanism (and not a faster one)
  std::vector<x86_64::Instruction> replaced;  ///< Jump: the whole instructions the jmp overwrites
  /// Jump on an exit: how many of `replaced` (those before the exit) run before the probe. The
  /// site then starts at the first of them (`address`), and `exit_address` is the exit's.
  std::size_t run_before = 0;
  uint64_t exit_address = 0;
  uint32_t agent_probe_id = 0;           ///< Jump/Int3Boost: index in the agent's probe table
  std::vector<uint8_t> patch;            ///< bytes written at `address` when armed

  // Set when armed.
  uint64_t slot_address = 0;             ///< out-of-line copy of the instruction
  x86_64::RelocatedCode slot;            ///< code placed at slot_address
  bool armed = false;

  /// Attach points this site stands for in "Attaching N probes" (each uretprobe once).
  [[nodiscard]] size_t attached_probe_count() const {
    size_t n = probe_names.size();
    for (bool repeat : repeat_exit) n -= repeat ? 1 : 0;
    return n;
  }
};

}  // namespace dprobe::probes
