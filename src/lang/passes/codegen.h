// Lowers a checked syntax tree to bytecode: one program per probe block.
#pragma once

#include "bytecode/module.h"
#include "lang/ast.h"
#include "lang/diagnostics.h"
#include "lang/passes/semantic_analyser.h"

namespace dprobe::lang {

/// Needs a tree that semantic analysis accepted. Reports only resource limits (registers, frame
/// size) as diagnostics. Each probe block gets one program, or one per attach point when it
/// reads `probe` or `func`; `point_programs[i][k]` is the program of attach point k of probe i.
[[nodiscard]] bytecode::Module generate(const ast::Program& program, const SemanticResult& semantic,
                                        Diagnostics& diagnostics,
                                        std::vector<std::vector<uint32_t>>& point_programs);

} // namespace dprobe::lang
