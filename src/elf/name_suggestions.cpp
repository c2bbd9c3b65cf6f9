#include "elf/name_suggestions.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace dprobe::elf {

size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rolling rows: the transposition case looks two rows back.
  std::vector<size_t> before(b.size() + 1);
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      size_t best = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        best = std::min(best, before[j - 2] + 1);
      }
      current[j] = best;
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::vector<std::string> suggest_near_names(std::string_view wanted,
                                            std::span<const std::string_view> candidates,
                                            size_t max_count) {
  const size_t max_distance = std::max<size_t>(1, wanted.size() / 3);
  std::vector<std::pair<size_t, std::string_view>> near;
  for (std::string_view candidate : candidates) {
    if (candidate == wanted) continue;
    // The length difference is a lower bound of the distance: skips most of a libc's names.
    size_t length_gap = candidate.size() > wanted.size() ? candidate.size() - wanted.size()
                                                         : wanted.size() - candidate.size();
    if (length_gap > max_distance) continue;
    size_t distance = edit_distance(wanted, candidate);
    if (distance <= max_distance) near.emplace_back(distance, candidate);
  }
  std::sort(near.begin(), near.end());
  near.erase(std::unique(near.begin(), near.end()), near.end());
  // Only the nearest tier: names sharing a long prefix all fall under the limit, and listing
  // them would bury the likely fix.
  std::vector<std::string> result;
  for (const auto &[distance, name] : near) {
    if (result.size() == max_count || distance != near.front().first) break;
    result.emplace_back(name);
  }
  return result;
}

std::string format_suggestions(std::span<const std::string> suggestions) {
  if (suggestions.empty()) return "";
  std::string text = " (did you mean ";
  for (size_t i = 0; i < suggestions.size(); ++i) {
    if (i > 0) text += (i + 1 == suggestions.size()) ? " or " : ", ";
    text += fmt::format("'{}'", suggestions[i]);
  }
  text += "?)";
  return text;
}

} // namespace dprobe::elf
