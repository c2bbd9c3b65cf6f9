// Types every expression, checks every rule the language has, and decides the map schemas.
// Runs before anything else sees the tree: after it, codegen can assume a well-typed program.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bytecode/module.h"
#include "lang/ast.h"
#include "lang/diagnostics.h"

namespace dprobe::lang {

struct SemanticResult {
  /// Every map of the script, in order of first appearance; ast::Map::map_id indexes it.
  std::vector<bytecode::MapSchema> maps;
  /// Per probe (same index as ast::Program::probes): each scratch variable and its type.
  std::vector<std::map<std::string, Type>> probe_variables;
  /// Per probe: it reads `probe` or `func`, which differ per attach point (so codegen makes one
  /// program per attach point).
  std::vector<bool> probe_names_attach_point;
};

struct AnalyserOptions {
  bool unsafe = false; ///< --unsafe: system() is allowed
  bool child_command = false; ///< -c: `cpid` is defined
};

/// Annotates `program` (types, map ids) and reports errors to `diagnostics`.
[[nodiscard]] SemanticResult analyse(ast::Program& program, Diagnostics& diagnostics,
                                     const AnalyserOptions& options = {});

} // namespace dprobe::lang
