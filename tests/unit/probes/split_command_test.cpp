#include <gtest/gtest.h>

#include "command_line.h"

namespace dprobe::cli {
namespace {

TEST(SplitCommand, WhitespaceSeparatesWords) {
  auto words = split_command("  ./loop   1000\t2 ");
  ASSERT_TRUE(words);
  EXPECT_EQ(*words, (std::vector<std::string>{"./loop", "1000", "2"}));
}

TEST(SplitCommand, QuotesAndEscapesKeepSpaces) {
  auto words = split_command(R"(sh -c 'echo a  b' "x \"y\"" c\ d)");
  ASSERT_TRUE(words);
  EXPECT_EQ(*words, (std::vector<std::string>{"sh", "-c", "echo a  b", "x \"y\"", "c d"}));
}

TEST(SplitCommand, EmptyQuotedWordIsAWord) {
  auto words = split_command("prog ''");
  ASSERT_TRUE(words);
  EXPECT_EQ(*words, (std::vector<std::string>{"prog", ""}));
}

TEST(SplitCommand, RefusesUnterminatedQuoteAndEmptyCommand) {
  auto open = split_command("prog 'abc");
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().message, "-c: unterminated ' quote in 'prog 'abc'");
  auto empty = split_command("   ");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "-c: empty command");
}

}  // namespace
}  // namespace dprobe::cli
