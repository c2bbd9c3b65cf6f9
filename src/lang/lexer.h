// Turns script text into tokens on demand. Attach points are lexed in their own mode because
// their paths contain characters ('/', '.', '-', '+') that are operators elsewhere; the parser
// asks for that mode exactly where an attach point may start.
#pragma once

#include <string_view>

#include "lang/token.h"

namespace dprobe::lang {

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(source) {}

  /// The next ordinary token (Error tokens carry a message; lexing can go on after them).
  Token next();
  /// The next attach point: everything up to whitespace, ',' or '{' (double-quoted parts may
  /// hold any of those; the quotes are removed). Returns an ordinary token instead when the next
  /// character cannot start an attach point (e.g. '{', '/', end of file).
  Token next_attach_point();
  /// The next ordinary token without consuming it.
  Token peek();

 private:
  Token next_impl();
  Token next_attach_point_impl();
  Token finish(Token token);
  void skip_space_and_comments(Token* error);
  [[nodiscard]] char at(size_t offset) const {
    return pos_ + offset < source_.size() ? source_[pos_ + offset] : '\0';
  }
  void advance(size_t n = 1);
  [[nodiscard]] SourceLocation here(int length = 1) const { return {line_, column_, length}; }
  Token lex_number();
  Token lex_string();
  Token make(TokenKind kind, size_t length);

  std::string_view source_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  // Just past the last real token: where "unexpected end of file" points.
  int last_end_line_ = 1;
  int last_end_column_ = 1;
};

} // namespace dprobe::lang
