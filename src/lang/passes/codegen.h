// Lowers a checked syntax tree to bytecode: one program per probe block.
#pragma once

#include "bytecode/module.h"
#include "lang/ast.h"
#include "lang/diagnostics.h"
#include "lang/passes/semantic_analyser.h"

namespace dprobe::lang {

/// Needs a tree that semantic analysis accepted. Reports only resource limits (registers, frame
/// size) as diagnostics. Program i of the module is probe i of the tree.
[[nodiscard]] bytecode::Module generate(const ast::Program& program, const SemanticResult& semantic,
                                        Diagnostics& diagnostics);

} // namespace dprobe::lang
