#include "lang/lexer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dprobe::lang {
namespace {

std::vector<Token> lex_all(std::string_view source) {
  Lexer lexer(source);
  std::vector<Token> tokens;
  while (true) {
    Token t = lexer.next();
    if (t.kind == TokenKind::End) break;
    tokens.push_back(std::move(t));
    if (tokens.size() > 100) break;
  }
  return tokens;
}

std::vector<TokenKind> kinds(std::string_view source) {
  std::vector<TokenKind> out;
  for (const Token& t : lex_all(source))
    out.push_back(t.kind);
  return out;
}

TEST(Lexer, OperatorsLongestFirst) {
  EXPECT_EQ(
      kinds("<<= << <= < >>= >> >= > == = != ! && & || | ++ += + -- -= -> -"),
      (std::vector<TokenKind>{
          TokenKind::ShlAssign,   TokenKind::Shl,        TokenKind::Le,       TokenKind::Lt,
          TokenKind::ShrAssign,   TokenKind::Shr,        TokenKind::Ge,       TokenKind::Gt,
          TokenKind::Eq,          TokenKind::Assign,     TokenKind::Ne,       TokenKind::Bang,
          TokenKind::AmpAmp,      TokenKind::Amp,        TokenKind::PipePipe, TokenKind::Pipe,
          TokenKind::PlusPlus,    TokenKind::PlusAssign, TokenKind::Plus,     TokenKind::MinusMinus,
          TokenKind::MinusAssign, TokenKind::Arrow,      TokenKind::Minus}));
}

TEST(Lexer, NamesMapsAndVariables) {
  const std::vector<Token> t = lex_all("arg0 @ @count $x _a1 @_ $1");
  ASSERT_EQ(t.size(), 7u);
  EXPECT_EQ(t[0].kind, TokenKind::Ident);
  EXPECT_EQ(t[0].text, "arg0");
  EXPECT_EQ(t[1].kind, TokenKind::MapName);
  EXPECT_EQ(t[1].text, "@");
  EXPECT_EQ(t[2].text, "@count");
  EXPECT_EQ(t[3].kind, TokenKind::Variable);
  EXPECT_EQ(t[3].text, "$x");
  EXPECT_EQ(t[4].kind, TokenKind::Ident);
  EXPECT_EQ(t[5].text, "@_");
  EXPECT_EQ(t[6].text, "$1");
}

TEST(Lexer, MapNamesStartLikeIdentifiers) {
  const std::vector<Token> t = lex_all("@0");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].text, "@");
  EXPECT_EQ(t[1].kind, TokenKind::Integer);
}

TEST(Lexer, IntegerForms) {
  const std::vector<Token> t =
      lex_all("0 42 0x1F 0XfF 010 1_000 1e3 5u 7ul 18446744073709551615 0xffffffffffffffff");
  std::vector<uint64_t> values;
  for (const Token& token : t) {
    ASSERT_EQ(token.kind, TokenKind::Integer) << token.text;
    values.push_back(token.value);
  }
  EXPECT_EQ(values,
            (std::vector<uint64_t>{0, 42, 31, 255, 8, 1000, 1000, 5, 7, UINT64_MAX, UINT64_MAX}));
}

TEST(Lexer, BadIntegers) {
  for (const char* text :
       {"0b101", "0x", "09", "12abc", "99999999999999999999", "0x1ffffffffffffffff"}) {
    const std::vector<Token> t = lex_all(text);
    ASSERT_EQ(t.size(), 1u) << text;
    EXPECT_EQ(t[0].kind, TokenKind::Error) << text;
  }
  EXPECT_EQ(lex_all("0b101")[0].text, "invalid integer literal '0b101'");
  EXPECT_EQ(lex_all("99999999999999999999")[0].text,
            "integer literal '99999999999999999999' does not fit in 64 bits");
}

TEST(Lexer, StringEscapes) {
  const std::vector<Token> t = lex_all(R"("a\n\t\r\"\\\'b" "\x41\101\0z")");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].kind, TokenKind::String);
  EXPECT_EQ(t[0].text, "a\n\t\r\"\\'b");
  EXPECT_EQ(t[1].text, std::string("AA\0z", 4));
  EXPECT_EQ(t[0].location.length, 16);
}

TEST(Lexer, StringErrors) {
  std::vector<Token> t = lex_all(R"("abc)");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].kind, TokenKind::Error);
  EXPECT_EQ(t[0].text, "unterminated string");
  t = lex_all(R"("a\qb")");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].text, "invalid escape sequence '\\q'");
  EXPECT_EQ(t[0].location.column, 3);
  EXPECT_EQ(lex_all("\"ab\ncd\"")[0].text, "unterminated string");
}

TEST(Lexer, CommentsAndLocations) {
  const std::vector<Token> t = lex_all("a // one\n  /* two\n three */ b\n\tc");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].location.line, 1);
  EXPECT_EQ(t[0].location.column, 1);
  EXPECT_EQ(t[1].location.line, 3);
  EXPECT_EQ(t[1].location.column, 11);
  EXPECT_EQ(t[2].location.line, 4);
  EXPECT_EQ(t[2].location.column, 2);
  EXPECT_EQ(lex_all("a /* open")[1].text, "unterminated comment");
}

TEST(Lexer, ShebangLinesAreComments) {
  const std::vector<Token> t = lex_all("#!/usr/bin/env bpftrace\na\n#!x\nb");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].text, "a");
  EXPECT_EQ(t[1].text, "b");
  const std::vector<Token> directive = lex_all("#include <linux/sched.h>\na");
  ASSERT_EQ(directive.size(), 2u);
  EXPECT_EQ(directive[0].kind, TokenKind::Error);
  EXPECT_EQ(directive[0].text, "C preprocessor directives are not supported yet");
  EXPECT_EQ(directive[0].location.length, 24);
}

TEST(Lexer, UnexpectedCharacters) {
  const std::vector<Token> t = lex_all("a # b");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].kind, TokenKind::Error);
  EXPECT_EQ(t[1].text, "unexpected character '#'");
}

TEST(Lexer, AttachPointMode) {
  Lexer lexer("uprobe:/usr/lib/libc.so.6:malloc+0x10, u:./a-b_c.d:f\n/arg0/ {");
  Token t = lexer.next_attach_point();
  EXPECT_EQ(t.kind, TokenKind::AttachPoint);
  EXPECT_EQ(t.text, "uprobe:/usr/lib/libc.so.6:malloc+0x10");
  EXPECT_EQ(lexer.next().kind, TokenKind::Comma);
  t = lexer.next_attach_point();
  EXPECT_EQ(t.text, "u:./a-b_c.d:f");
  EXPECT_EQ(lexer.next_attach_point().kind,
            TokenKind::Slash); // not an attach point: ordinary token
}

TEST(Lexer, QuotedAttachPoint) {
  Lexer lexer(R"(uprobe:"/tmp/my dir/prog":work {)");
  const Token t = lexer.next_attach_point();
  EXPECT_EQ(t.kind, TokenKind::AttachPoint);
  EXPECT_EQ(t.text, R"(uprobe:"/tmp/my dir/prog":work)");
  EXPECT_EQ(lexer.next().kind, TokenKind::LBrace);
}

TEST(Lexer, EndOfFileSitsAfterTheLastToken) {
  Lexer lexer("a b   \n\n  // trailing\n");
  lexer.next();
  lexer.next();
  const Token end = lexer.next();
  EXPECT_EQ(end.kind, TokenKind::End);
  EXPECT_EQ(end.location.line, 1);
  EXPECT_EQ(end.location.column, 4);
}

TEST(Lexer, PeekDoesNotConsume) {
  Lexer lexer("x y");
  EXPECT_EQ(lexer.peek().text, "x");
  EXPECT_EQ(lexer.next().text, "x");
  EXPECT_EQ(lexer.next().text, "y");
}

} // namespace
} // namespace dprobe::lang
