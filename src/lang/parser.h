// Recursive-descent parser: script text to syntax tree. Stops at the first syntax error.
#pragma once

#include <string_view>

#include "lang/ast.h"
#include "lang/diagnostics.h"

namespace dprobe::lang {

/// Parses a whole script. Syntax errors (and attach point errors) go to `diagnostics`; the
/// returned tree is only meaningful when no error was reported.
[[nodiscard]] ast::Program parse(std::string_view source, Diagnostics& diagnostics);

} // namespace dprobe::lang
