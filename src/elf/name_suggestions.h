// "Did you mean ...?" hints for misspelled symbol names.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dprobe::elf {

/// Edit distance where insertion, deletion, substitution and swapping two adjacent
/// characters each cost 1 (optimal string alignment), so "mallco" is 1 away from "malloc".
[[nodiscard]] size_t edit_distance(std::string_view a, std::string_view b);

/// Up to `max_count` candidates nearest to `wanted`: all at the smallest edit distance found,
/// sorted by name, provided that distance is at most max(1, |wanted| / 3). `wanted` itself and
/// duplicates are left out; no candidate close enough gives an empty result.
[[nodiscard]] std::vector<std::string>
suggest_near_names(std::string_view wanted, std::span<const std::string_view> candidates,
                   size_t max_count = 3);

/// " (did you mean 'a'?)", " (did you mean 'a' or 'b'?)", " (did you mean 'a', 'b' or 'c'?)",
/// or "" for no suggestions: ready to append to an error message.
[[nodiscard]] std::string format_suggestions(std::span<const std::string> suggestions);

} // namespace dprobe::elf
