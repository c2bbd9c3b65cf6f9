// `dprobe -d`: the compiled program as text, for debugging scripts and the compiler.
#pragma once

#include <string>

#include "lang/compiler.h"

namespace dprobe::cli {

/// The probes with their attach points, then the maps, printf formats and strings of the
/// module, then each program's bytecode (bytecode/disassembler.h). Deterministic: no
/// addresses, nothing from the machine.
[[nodiscard]] std::string dump_program(const lang::CompiledScript& script);

} // namespace dprobe::cli
