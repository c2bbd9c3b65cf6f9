#include "lang/lexer.h"

#include <fmt/format.h>

namespace dprobe::lang {

namespace {

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

struct Operator {
  const char* text;
  TokenKind kind;
};

// Longest first, so that "<<=" wins over "<<" and "<".
constexpr Operator kOperators[] = {
    {"<<=", TokenKind::ShlAssign},
    {">>=", TokenKind::ShrAssign},
    {"==", TokenKind::Eq},
    {"!=", TokenKind::Ne},
    {"<=", TokenKind::Le},
    {">=", TokenKind::Ge},
    {"<<", TokenKind::Shl},
    {">>", TokenKind::Shr},
    {"&&", TokenKind::AmpAmp},
    {"||", TokenKind::PipePipe},
    {"++", TokenKind::PlusPlus},
    {"--", TokenKind::MinusMinus},
    {"+=", TokenKind::PlusAssign},
    {"-=", TokenKind::MinusAssign},
    {"*=", TokenKind::StarAssign},
    {"/=", TokenKind::SlashAssign},
    {"%=", TokenKind::PercentAssign},
    {"&=", TokenKind::AmpAssign},
    {"|=", TokenKind::PipeAssign},
    {"^=", TokenKind::CaretAssign},
    {"->", TokenKind::Arrow},
    {"{", TokenKind::LBrace},
    {"}", TokenKind::RBrace},
    {"(", TokenKind::LParen},
    {")", TokenKind::RParen},
    {"[", TokenKind::LBracket},
    {"]", TokenKind::RBracket},
    {",", TokenKind::Comma},
    {";", TokenKind::Semicolon},
    {":", TokenKind::Colon},
    {"?", TokenKind::Question},
    {".", TokenKind::Dot},
    {"=", TokenKind::Assign},
    {"+", TokenKind::Plus},
    {"-", TokenKind::Minus},
    {"*", TokenKind::Star},
    {"/", TokenKind::Slash},
    {"%", TokenKind::Percent},
    {"&", TokenKind::Amp},
    {"|", TokenKind::Pipe},
    {"^", TokenKind::Caret},
    {"!", TokenKind::Bang},
    {"~", TokenKind::Tilde},
    {"<", TokenKind::Lt},
    {">", TokenKind::Gt},
};

} // namespace

std::string describe(TokenKind kind) {
  switch (kind) {
  case TokenKind::End:
    return "end of file";
  case TokenKind::Error:
    return "invalid token";
  case TokenKind::Ident:
    return "identifier";
  case TokenKind::MapName:
    return "map";
  case TokenKind::Variable:
    return "variable";
  case TokenKind::Integer:
    return "integer";
  case TokenKind::String:
    return "string";
  case TokenKind::AttachPoint:
    return "attach point";
  default:
    break;
  }
  for (const Operator& op : kOperators) {
    if (op.kind == kind) return fmt::format("'{}'", op.text);
  }
  return "token";
}

std::string describe(const Token& token) {
  switch (token.kind) {
  case TokenKind::Ident:
  case TokenKind::MapName:
  case TokenKind::Variable:
  case TokenKind::Integer:
    return fmt::format("'{}'", token.text);
  case TokenKind::String:
    return "string";
  default:
    return describe(token.kind);
  }
}

void Lexer::advance(size_t n) {
  for (size_t i = 0; i < n && pos_ < source_.size(); ++i) {
    if (source_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }
}

Token Lexer::make(TokenKind kind, size_t length) {
  Token token{kind, here(static_cast<int>(length)), std::string(source_.substr(pos_, length)), 0};
  advance(length);
  return token;
}

void Lexer::skip_space_and_comments(Token* error) {
  while (pos_ < source_.size()) {
    const char c = at(0);
    if (is_space(c)) {
      advance();
    } else if (c == '#' && at(1) == '!' && column_ == 1) {
      // A "#!" line (a script's shebang) is a comment, as in bpftrace.
      while (pos_ < source_.size() && at(0) != '\n')
        advance();
    } else if (c == '/' && at(1) == '/') {
      while (pos_ < source_.size() && at(0) != '\n')
        advance();
    } else if (c == '/' && at(1) == '*') {
      const SourceLocation start = here(2);
      advance(2);
      while (pos_ < source_.size() && !(at(0) == '*' && at(1) == '/'))
        advance();
      if (pos_ >= source_.size()) {
        *error = Token{TokenKind::Error, start, "unterminated comment", 0};
        return;
      }
      advance(2);
    } else {
      return;
    }
  }
}

Token Lexer::peek() {
  const size_t pos = pos_;
  const int line = line_;
  const int column = column_;
  const int end_line = last_end_line_;
  const int end_column = last_end_column_;
  Token token = next();
  pos_ = pos;
  line_ = line;
  column_ = column;
  last_end_line_ = end_line;
  last_end_column_ = end_column;
  return token;
}

Token Lexer::finish(Token token) {
  if (token.kind == TokenKind::End) {
    token.location = SourceLocation{last_end_line_, last_end_column_, 1};
  } else {
    last_end_line_ = line_;
    last_end_column_ = column_;
  }
  return token;
}

Token Lexer::next() {
  return finish(next_impl());
}

Token Lexer::next_attach_point() {
  return finish(next_attach_point_impl());
}

Token Lexer::next_impl() {
  Token error;
  skip_space_and_comments(&error);
  if (error.kind == TokenKind::Error) return error;
  if (pos_ >= source_.size()) return Token{TokenKind::End, here(1), "", 0};

  const char c = at(0);
  if (is_ident_start(c)) {
    size_t n = 1;
    while (is_ident_char(at(n)))
      ++n;
    return make(TokenKind::Ident, n);
  }
  if (c == '@') {
    // "@" alone is the anonymous map; names start like identifiers ("@0" is not a map name).
    size_t n = 1;
    if (is_ident_start(at(1))) {
      while (is_ident_char(at(n)))
        ++n;
    }
    return make(TokenKind::MapName, n);
  }
  if (c == '$') {
    // "$1" is a positional parameter; semantic analysis says it is not supported yet.
    size_t n = 1;
    while (is_ident_char(at(n)))
      ++n;
    if (n == 1) return Token{TokenKind::Error, here(1), "expected a variable name after '$'", 0};
    return make(TokenKind::Variable, n);
  }
  if (is_digit(c)) return lex_number();
  if (c == '#' && column_ == 1 && is_ident_start(at(1))) {
    size_t n = 1;
    while (pos_ + n < source_.size() && at(n) != '\n')
      ++n;
    Token bad{TokenKind::Error, here(static_cast<int>(n)),
              "C preprocessor directives are not supported yet", 0};
    advance(n);
    return bad;
  }
  if (c == '"') return lex_string();
  for (const Operator& op : kOperators) {
    const std::string_view text(op.text);
    if (source_.substr(pos_, text.size()) == text) return make(op.kind, text.size());
  }
  Token bad{TokenKind::Error, here(1), "", 0};
  const unsigned char uc = static_cast<unsigned char>(c);
  bad.text = uc >= 0x20 && uc < 0x7f ? fmt::format("unexpected character '{}'", c)
                                     : fmt::format("unexpected byte 0x{:02x}", uc);
  advance();
  return bad;
}

Token Lexer::next_attach_point_impl() {
  Token error;
  skip_space_and_comments(&error);
  if (error.kind == TokenKind::Error) return error;
  const char c = at(0);
  if (pos_ >= source_.size() || c == '{' || c == '}' || c == '/' || c == ',' || c == ';' ||
      c == '#') {
    return next_impl();
  }
  size_t n = 0;
  bool in_quotes = false;
  while (pos_ + n < source_.size()) {
    const char d = at(n);
    if (d == '"') {
      in_quotes = !in_quotes;
    } else if (!in_quotes && (is_space(d) || d == ',' || d == '{')) {
      break;
    } else if (d == '\n') {
      break;
    }
    ++n;
  }
  if (in_quotes) {
    Token bad{TokenKind::Error, here(static_cast<int>(n)), "unterminated string in attach point",
              0};
    advance(n);
    return bad;
  }
  return make(TokenKind::AttachPoint, n);
}

Token Lexer::lex_number() {
  const SourceLocation start = here();
  size_t n = 0;
  unsigned base = 10;
  if (at(0) == '0' && (at(1) == 'x' || at(1) == 'X')) {
    base = 16;
    n = 2;
  } else if (at(0) == '0' && (is_digit(at(1)) || at(1) == '_')) {
    base = 8;
    n = 1;
  }
  uint64_t value = 0;
  bool overflow = false;
  bool bad_digit = false;
  size_t digits = 0;
  auto add_digit = [&](unsigned d) {
    if (d >= base) bad_digit = true;
    if (value > (UINT64_MAX - d) / base) overflow = true;
    value = value * base + d;
  };
  for (;; ++n) {
    const char d = at(n);
    if (d == '_' && digits > 0) continue;
    const int v = digit_value(d);
    if (v >= 16 || (base != 16 && v >= 10)) break;
    add_digit(static_cast<unsigned>(v));
    ++digits;
  }
  // 1e3: a decimal mantissa times a power of ten, as bpftrace accepts.
  if (base == 10 && (at(n) == 'e' || at(n) == 'E') && is_digit(at(n + 1))) {
    size_t m = n + 1;
    unsigned exponent = 0;
    while (is_digit(at(m))) {
      exponent = exponent * 10 + static_cast<unsigned>(at(m) - '0');
      if (exponent > 64) exponent = 64;
      ++m;
    }
    for (unsigned i = 0; i < exponent; ++i) {
      if (value > UINT64_MAX / 10) overflow = true;
      value *= 10;
    }
    n = m;
  }
  // C suffixes (u, l, ul, ll, ull) are accepted and ignored: every integer is 64 bits.
  size_t suffix = 0;
  while (suffix < 3 && (at(n + suffix) == 'u' || at(n + suffix) == 'U' || at(n + suffix) == 'l' ||
                        at(n + suffix) == 'L')) {
    ++suffix;
  }
  n += suffix;
  size_t tail = n;
  while (is_ident_char(at(tail)))
    ++tail;
  const std::string text(source_.substr(pos_, tail));
  SourceLocation location = start;
  location.length = static_cast<int>(tail);
  advance(tail);
  if (tail != n || (base == 16 && digits == 0) || bad_digit) {
    return Token{TokenKind::Error, location, fmt::format("invalid integer literal '{}'", text), 0};
  }
  if (overflow) {
    return Token{TokenKind::Error, location,
                 fmt::format("integer literal '{}' does not fit in 64 bits", text), 0};
  }
  return Token{TokenKind::Integer, location, text, value};
}

Token Lexer::lex_string() {
  const SourceLocation start = here();
  const size_t begin = pos_;
  advance(); // opening quote
  std::string value;
  Token error;
  while (true) {
    if (pos_ >= source_.size() || at(0) == '\n') {
      SourceLocation location = start;
      location.length = static_cast<int>(pos_ - begin);
      return Token{TokenKind::Error, location, "unterminated string", 0};
    }
    const char c = at(0);
    if (c == '"') {
      advance();
      break;
    }
    if (c != '\\') {
      value += c;
      advance();
      continue;
    }
    const SourceLocation escape_at = here(2);
    const char e = at(1);
    advance(2);
    switch (e) {
    case 'n':
      value += '\n';
      break;
    case 't':
      value += '\t';
      break;
    case 'r':
      value += '\r';
      break;
    case '\\':
      value += '\\';
      break;
    case '"':
      value += '"';
      break;
    case '\'':
      value += '\'';
      break;
    case 'x': {
      int v = 0;
      int digits = 0;
      while (digits < 2 && digit_value(at(0)) < 16) {
        v = v * 16 + digit_value(at(0));
        advance();
        ++digits;
      }
      if (digits == 0 && error.kind != TokenKind::Error) {
        error = Token{TokenKind::Error, escape_at, "invalid escape sequence '\\x'", 0};
      }
      value += static_cast<char>(v);
      break;
    }
    default:
      if (e >= '0' && e <= '7') {
        int v = e - '0';
        for (int digits = 1; digits < 3 && at(0) >= '0' && at(0) <= '7'; ++digits) {
          v = v * 8 + (at(0) - '0');
          advance();
        }
        value += static_cast<char>(v & 0xff);
      } else if (error.kind != TokenKind::Error) {
        error = Token{TokenKind::Error, escape_at,
                      fmt::format("invalid escape sequence '\\{}'", e == '\0' ? ' ' : e), 0};
      }
      break;
    }
  }
  if (error.kind == TokenKind::Error) return error;
  SourceLocation location = start;
  location.length = static_cast<int>(pos_ - begin);
  return Token{TokenKind::String, location, value, 0};
}

} // namespace dprobe::lang
