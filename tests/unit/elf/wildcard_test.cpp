#include "elf/wildcard.h"

#include <gtest/gtest.h>

namespace dprobe::elf {
namespace {

TEST(WildcardMatch, StarMatchesAnyRunIncludingEmpty) {
  EXPECT_TRUE(wildcard_match("*", ""));
  EXPECT_TRUE(wildcard_match("*", "main"));
  EXPECT_TRUE(wildcard_match("**", "main"));
}

TEST(WildcardMatch, PrefixPattern) {
  EXPECT_TRUE(wildcard_match("parse_*", "parse_"));
  EXPECT_TRUE(wildcard_match("parse_*", "parse_config"));
  EXPECT_FALSE(wildcard_match("parse_*", "parse"));
  EXPECT_FALSE(wildcard_match("parse_*", "xparse_config"));
}

TEST(WildcardMatch, SuffixAndInfix) {
  EXPECT_TRUE(wildcard_match("*_init", "module_init"));
  EXPECT_FALSE(wildcard_match("*_init", "module_init2"));
  EXPECT_TRUE(wildcard_match("*alloc*", "malloc"));
  EXPECT_TRUE(wildcard_match("*alloc*", "__libc_calloc_impl"));
  EXPECT_FALSE(wildcard_match("*alloc*", "free"));
}

TEST(WildcardMatch, QuestionMarkIsExactlyOneCharacter) {
  EXPECT_TRUE(wildcard_match("?", "a"));
  EXPECT_FALSE(wildcard_match("?", ""));
  EXPECT_FALSE(wildcard_match("?", "ab"));
  EXPECT_TRUE(wildcard_match("f??", "foo"));
  EXPECT_FALSE(wildcard_match("f??", "fo"));
  EXPECT_TRUE(wildcard_match("*?", "x"));
  EXPECT_FALSE(wildcard_match("*?", ""));
}

TEST(WildcardMatch, ExactNameWithoutWildcards) {
  EXPECT_TRUE(wildcard_match("work", "work"));
  EXPECT_FALSE(wildcard_match("work", "worker"));
  EXPECT_FALSE(wildcard_match("work", "wor"));
  EXPECT_TRUE(wildcard_match("", ""));
  EXPECT_FALSE(wildcard_match("", "a"));
}

TEST(WildcardMatch, BacktracksOverEarlierStar) {
  EXPECT_TRUE(wildcard_match("*a*b", "xaxbxab"));
  EXPECT_FALSE(wildcard_match("*a*b", "xaxbxa"));
  EXPECT_TRUE(wildcard_match("a*a*a", "aaa"));
  EXPECT_FALSE(wildcard_match("a*a*a", "aa"));
}

TEST(WildcardMatch, HasWildcard) {
  EXPECT_TRUE(has_wildcard("a*"));
  EXPECT_TRUE(has_wildcard("a?"));
  EXPECT_FALSE(has_wildcard("main"));
}

} // namespace
} // namespace dprobe::elf
