// A probe site: one instruction in one process where one or more probe programs run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "arch/x86_64/relocator.h"

namespace dprobe::probes {

/// How a site is reached when a thread executes it.
enum class Mechanism {
  Int3Ptrace,  ///< int3 trap reported to dprobe through ptrace; copy single-stepped out of line
};

[[nodiscard]] const char* mechanism_name(Mechanism m);

/// spec -> site: where an attach point landed in a process, and what runs there.
struct ProbeSite {
  std::vector<std::string> probe_names;  ///< attach points as written, in script order
  std::vector<uint32_t> programs;        ///< program indices, run in this order on a hit
  std::string file_path;                 ///< absolute path of the probed file
  std::string function;                  ///< containing function ("" when unknown)
  uint64_t function_offset = 0;
  uint64_t file_vaddr = 0;               ///< link-time address in the file
  uint64_t address = 0;                  ///< run-time address in the target
  x86_64::Instruction instruction;       ///< the original instruction, at `address`
  Mechanism mechanism = Mechanism::Int3Ptrace;

  // Set when armed.
  uint64_t slot_address = 0;             ///< out-of-line copy of the instruction
  x86_64::RelocatedCode slot;            ///< code placed at slot_address
  bool armed = false;
};

}  // namespace dprobe::probes
