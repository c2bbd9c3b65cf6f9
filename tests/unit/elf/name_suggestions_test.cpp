#include "elf/name_suggestions.h"

#include <gtest/gtest.h>

#include <array>

namespace dprobe::elf {
namespace {

using Names = std::vector<std::string>;

TEST(EditDistance, CountsSingleEdits) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("wrk", "work"), 1u);      // insertion
  EXPECT_EQ(edit_distance("work", "wrk"), 1u);      // deletion
  EXPECT_EQ(edit_distance("work", "word"), 1u);     // substitution
  EXPECT_EQ(edit_distance("mallco", "malloc"), 1u); // adjacent swap
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(SuggestNearNames, FindsTheMissingLetter) {
  std::array<std::string_view, 4> candidates{"main", "work", "worker", "exit"};
  EXPECT_EQ(suggest_near_names("wrk", candidates), (Names{"work"}));
}

TEST(SuggestNearNames, OnlyTheNearestTierSortedByName) {
  std::array<std::string_view, 5> candidates{"pop", "pup", "pip", "pap", "poop"};
  // pip, pap, pup, pop are all 1 away from "pep"; "poop" is 2 away.
  EXPECT_EQ(suggest_near_names("pep", candidates), (Names{"pap", "pip", "pop"}));
  EXPECT_EQ(suggest_near_names("pep", candidates, 2), (Names{"pap", "pip"}));
}

TEST(SuggestNearNames, NothingCloseGivesNothing) {
  std::array<std::string_view, 3> candidates{"main", "malloc", "free"};
  EXPECT_TRUE(suggest_near_names("zzz", candidates).empty());
  // 2 edits are too many for a 5-letter name (limit 5 / 3 = 1).
  EXPECT_TRUE(suggest_near_names("mlluc", candidates).empty());
  EXPECT_EQ(suggest_near_names("mallc", candidates), (Names{"malloc"}));
}

TEST(SuggestNearNames, LeavesOutTheNameItselfAndDuplicates) {
  std::array<std::string_view, 4> candidates{"work", "work", "wok", "wok"};
  EXPECT_EQ(suggest_near_names("work", candidates), (Names{"wok"}));
}

TEST(FormatSuggestions, OneTwoThree) {
  EXPECT_EQ(format_suggestions(Names{}), "");
  EXPECT_EQ(format_suggestions(Names{"a"}), " (did you mean 'a'?)");
  EXPECT_EQ(format_suggestions(Names{"a", "b"}), " (did you mean 'a' or 'b'?)");
  EXPECT_EQ(format_suggestions(Names{"a", "b", "c"}), " (did you mean 'a', 'b' or 'c'?)");
}

} // namespace
} // namespace dprobe::elf
