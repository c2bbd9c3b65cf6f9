// Tokens of the probe language.
#pragma once

#include <cstdint>
#include <string>

#include "lang/diagnostics.h"

namespace dprobe::lang {

enum class TokenKind : uint8_t {
  End,
  Error,       ///< text holds the message
  Ident,       ///< names, keywords and builtins: if, else, arg0, comm, printf, BEGIN
  MapName,     ///< "@" or "@name" (text includes the '@')
  Variable,    ///< "$name" (text includes the '$')
  Integer,     ///< value holds it
  String,      ///< text holds the value, escapes processed
  AttachPoint, ///< raw attach point text (only from Lexer::next_attach_point)
  LBrace,
  RBrace,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Semicolon,
  Colon,
  Question,
  Dot,
  Assign,
  PlusAssign,
  MinusAssign,
  StarAssign,
  SlashAssign,
  PercentAssign,
  AmpAssign,
  PipeAssign,
  CaretAssign,
  ShlAssign,
  ShrAssign,
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  Amp,
  AmpAmp,
  Pipe,
  PipePipe,
  Caret,
  Bang,
  Tilde,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  Shl,
  Shr,
  PlusPlus,
  MinusMinus,
  Arrow,
};

struct Token {
  TokenKind kind = TokenKind::End;
  SourceLocation location;
  std::string text;   ///< source spelling (decoded value for String, message for Error)
  uint64_t value = 0; ///< Integer only
};

/// How a token kind reads in messages: "'{'", "end of file", "identifier".
[[nodiscard]] std::string describe(TokenKind kind);
[[nodiscard]] std::string describe(const Token& token);

} // namespace dprobe::lang
