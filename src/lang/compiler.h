// The language pipeline's entry point: script text in, verified bytecode plus everything the
// runtime needs (map schemas, printf formats) out.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/module.h"
#include "common/result.h"
#include "lang/attach_point.h" // ProbeKind, AttachPoint
#include "lang/diagnostics.h"  // format_diagnostic, SourceLocation

namespace dprobe::lang {

/// One probe block of the script: where it attaches and which program runs on a hit.
struct ProbeBlock {
  std::vector<AttachPoint> attach_points;
  uint32_t program_index; ///< into module.programs (attach point 0's)
  /// Per attach point, its program: the same one for all, unless the block reads `probe` or
  /// `func` (then each attach point has its own, with its own names).
  std::vector<uint32_t> point_programs{};

  [[nodiscard]] uint32_t program_for(size_t attach_point) const {
    return attach_point < point_programs.size() ? point_programs[attach_point] : program_index;
  }
};

struct CompiledScript {
  std::vector<ProbeBlock> probes; ///< in source order
  /// Programs, map schemas (module.maps), printf formats (module.formats), constant strings.
  bytecode::Module module;
};

/// Compiles a script. `filename` names it in diagnostics ("stdin" for -e programs). On failure
/// Error.message holds the full multi-line diagnostic text (no trailing newline), one
/// three-line diagnostic per error:
///   FILE:LINE:COL: error: MESSAGE
///   <source line>
///   <spaces>^~~~
struct CompileOptions {
  bool unsafe = false; ///< --unsafe: allow system()
  bool child_command = false; ///< -c: `cpid` names the command's pid
  /// The attach points a wildcard attach point stands for (one per matching function, named as
  /// `probe` prints it), or nothing to leave it as written. Used for blocks that read `probe` or
  /// `func`: each match gets its own program with its own names, as in bpftrace. Without it,
  /// such a block names the pattern.
  std::function<std::vector<AttachPoint>(const AttachPoint&)> expand_wildcard{};
};

[[nodiscard]] Result<CompiledScript> compile(std::string_view source, std::string_view filename,
                                             const CompileOptions& options = {});

// format_diagnostic(source, filename, line, column, message[, length]) comes from
// lang/diagnostics.h: use it for later stages' errors at an attach point's line/column.

} // namespace dprobe::lang
