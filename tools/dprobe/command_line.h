// Splits a -c command into words, as a shell would without expansions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dprobe::cli {

/// Words of `command`: whitespace separates, '...' and "..." quote, backslash escapes.
[[nodiscard]] Result<std::vector<std::string>> split_command(std::string_view command);

}  // namespace dprobe::cli
