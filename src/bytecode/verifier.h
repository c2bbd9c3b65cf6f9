// Checks a whole module before any of it runs: every instruction of every program against the
// VM's own rules (vm_check_insn), plus the module-level facts the VM cannot see.
#pragma once

#include "bytecode/module.h"
#include "common/result.h"

namespace dprobe::bytecode {

/// Ok when every program can run without a VM fault; else names the first bad instruction,
/// e.g. "program 0 (BEGIN): instruction 3 (mapld): bad map id".
[[nodiscard]] Status verify(const Module& module);

} // namespace dprobe::bytecode
