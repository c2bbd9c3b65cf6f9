// bpftrace-style wildcards for probe names.
#pragma once

#include <string_view>

namespace dprobe::elf {

/// True when `text` matches `pattern`, where '*' matches any run of characters (also empty)
/// and '?' exactly one character; every other character matches itself. No escapes, as in
/// bpftrace. Runs in O(|pattern| * |text|) worst case, without recursion.
[[nodiscard]] bool wildcard_match(std::string_view pattern, std::string_view text);

/// True when `pattern` contains '*' or '?', i.e. may match more than one name.
[[nodiscard]] bool has_wildcard(std::string_view pattern);

} // namespace dprobe::elf
