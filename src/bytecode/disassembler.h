// Text listing of bytecode, for `-v` output and test failure messages.
#pragma once

#include <string>

#include "bytecode/module.h"

namespace dprobe::bytecode {

/// One instruction, e.g. "add r2, r0, r1" or "mapupd @counts[fp+64] add r3".
[[nodiscard]] std::string disassemble(const Insn& insn, const Module* module = nullptr);

/// A whole program, one numbered instruction per line.
[[nodiscard]] std::string disassemble(const Program& program, const Module* module = nullptr);

} // namespace dprobe::bytecode
