#include "lang/parser.h"

#include <optional>

#include <fmt/format.h>

#include "lang/lexer.h"

namespace dprobe::lang {

namespace {

using ast::BinaryOp;
using ast::ExprPtr;
using ast::StmtPtr;

struct BinaryLevel {
  TokenKind token;
  BinaryOp op;
};

// C precedence, loosest first; each level is left-associative.
const std::vector<std::vector<BinaryLevel>> kBinaryLevels = {
    {{TokenKind::PipePipe, BinaryOp::LOr}},
    {{TokenKind::AmpAmp, BinaryOp::LAnd}},
    {{TokenKind::Pipe, BinaryOp::BOr}},
    {{TokenKind::Caret, BinaryOp::BXor}},
    {{TokenKind::Amp, BinaryOp::BAnd}},
    {{TokenKind::Eq, BinaryOp::Eq}, {TokenKind::Ne, BinaryOp::Ne}},
    {{TokenKind::Lt, BinaryOp::Lt},
     {TokenKind::Le, BinaryOp::Le},
     {TokenKind::Gt, BinaryOp::Gt},
     {TokenKind::Ge, BinaryOp::Ge}},
    {{TokenKind::Shl, BinaryOp::Shl}, {TokenKind::Shr, BinaryOp::Shr}},
    {{TokenKind::Plus, BinaryOp::Add}, {TokenKind::Minus, BinaryOp::Sub}},
    {{TokenKind::Star, BinaryOp::Mul},
     {TokenKind::Slash, BinaryOp::Div},
     {TokenKind::Percent, BinaryOp::Mod}},
};

std::optional<BinaryOp> compound_op(TokenKind kind) {
  switch (kind) {
  case TokenKind::PlusAssign:
    return BinaryOp::Add;
  case TokenKind::MinusAssign:
    return BinaryOp::Sub;
  case TokenKind::StarAssign:
    return BinaryOp::Mul;
  case TokenKind::SlashAssign:
    return BinaryOp::Div;
  case TokenKind::PercentAssign:
    return BinaryOp::Mod;
  case TokenKind::AmpAssign:
    return BinaryOp::BAnd;
  case TokenKind::PipeAssign:
    return BinaryOp::BOr;
  case TokenKind::CaretAssign:
    return BinaryOp::BXor;
  case TokenKind::ShlAssign:
    return BinaryOp::Shl;
  case TokenKind::ShrAssign:
    return BinaryOp::Shr;
  default:
    return std::nullopt;
  }
}

// How deeply expressions and blocks may nest (brackets, unary operators, operator chains, if
// blocks). The passes after the parser recurse over the tree, so an unbounded depth (found by
// the fuzzer: 10^5 nested brackets) would overflow dprobe's stack; real scripts stay far below.
constexpr int kMaxNesting = 256;

/// A name that can only be meant as a type: "uint9", "int128", "string", "char", "long".
bool looks_like_type(std::string_view name) {
  if (name == "string" || name == "char" || name == "short" || name == "long" ||
      name == "unsigned" || name == "signed" || name == "bool" || name == "void") {
    return true;
  }
  std::string_view rest = name;
  if (rest.starts_with("u")) rest.remove_prefix(1);
  if (!rest.starts_with("int") || rest.size() == 3) return false;
  for (char c : rest.substr(3)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_keyword(std::string_view name) {
  return name == "if" || name == "else" || name == "while" || name == "unroll" ||
         name == "return" || name == "for" || name == "break" || name == "continue";
}

class Parser {
 public:
  Parser(std::string_view source, Diagnostics& diagnostics)
      : lexer_(source), diagnostics_(diagnostics) {}

  ast::Program parse_program() {
    ast::Program program;
    while (!failed_) {
      Token first = lexer_.next_attach_point();
      if (first.kind == TokenKind::End) break;
      std::optional<ast::Probe> probe = parse_probe(std::move(first));
      if (!probe) break;
      program.probes.push_back(std::move(*probe));
    }
    return program;
  }

 private:
  // --- tokens ---------------------------------------------------------------------------------

  const Token& cur() {
    if (!have_token_) {
      token_ = lexer_.next();
      have_token_ = true;
    }
    return token_;
  }

  Token take() {
    cur();
    have_token_ = false;
    prev_end_ = token_.location;
    return token_;
  }

  bool at(TokenKind kind) { return cur().kind == kind; }

  bool at_ident(std::string_view name) { return at(TokenKind::Ident) && cur().text == name; }

  bool accept(TokenKind kind) {
    if (!at(kind)) return false;
    take();
    return true;
  }

  /// Enters one level of nesting at the current token; false (with a diagnostic) past the limit.
  /// Every successful enter() is paired with leave().
  bool enter() {
    if (++nesting_ <= kMaxNesting) return true;
    --nesting_;
    error(cur().location, fmt::format("nested too deeply (more than {} levels)", kMaxNesting));
    return false;
  }
  void leave() { --nesting_; }

  void error(SourceLocation location, std::string message) {
    if (failed_) return;
    failed_ = true;
    diagnostics_.error(location, std::move(message));
  }

  /// Reports "expected X, found Y" at the current token (or the lexer's own message).
  void expected(std::string_view what) {
    const Token& t = cur();
    if (t.kind == TokenKind::Error) {
      error(t.location, t.text);
    } else {
      error(t.location, fmt::format("expected {}, found {}", what, describe(t)));
    }
  }

  bool expect(TokenKind kind) {
    if (accept(kind)) return true;
    expected(describe(kind));
    return false;
  }

  /// `start` widened to the end of the last token taken, when both are on one line.
  SourceLocation span_from(SourceLocation start) const {
    if (prev_end_.line == start.line && prev_end_.column >= start.column) {
      start.length = prev_end_.column + prev_end_.length - start.column;
    }
    return start;
  }

  // --- probes ---------------------------------------------------------------------------------

  std::optional<ast::Probe> parse_probe(Token first) {
    ast::Probe probe;
    probe.location = first.location;
    Token point = std::move(first);
    while (true) {
      if (point.kind != TokenKind::AttachPoint) {
        if (point.kind == TokenKind::Error) {
          error(point.location, point.text);
        } else {
          error(point.location, fmt::format("expected attach point, found {}", describe(point)));
        }
        return std::nullopt;
      }
      AttachPoint ap{};
      if (std::optional<std::string> message = parse_attach_point(point.text, ap)) {
        error(point.location, *message);
        return std::nullopt;
      }
      ap.line = point.location.line;
      ap.column = point.location.column;
      probe.attach_points.push_back(std::move(ap));
      if (!accept(TokenKind::Comma)) break;
      point = lexer_.next_attach_point();
    }
    if (accept(TokenKind::Slash)) {
      predicate_depth_ = 1;
      probe.predicate = parse_expr();
      predicate_depth_ = 0;
      if (!probe.predicate || !expect(TokenKind::Slash)) return std::nullopt;
    }
    if (!at(TokenKind::LBrace)) {
      expected("'{'");
      return std::nullopt;
    }
    if (!parse_block(probe.body)) return std::nullopt;
    return probe;
  }

  // --- statements -----------------------------------------------------------------------------

  bool parse_block(std::vector<StmtPtr>& body) {
    if (!enter()) return false;
    const bool parsed = parse_block_body(body);
    leave();
    return parsed;
  }

  bool parse_block_body(std::vector<StmtPtr>& body) {
    if (!expect(TokenKind::LBrace)) return false;
    while (true) {
      if (accept(TokenKind::RBrace)) return true;
      if (accept(TokenKind::Semicolon)) continue;
      if (at(TokenKind::End)) {
        expected("'}'");
        return false;
      }
      StmtPtr stmt = parse_stmt();
      if (!stmt) return false;
      const bool is_block = stmt->kind == ast::StmtKind::If || stmt->kind == ast::StmtKind::While ||
                            stmt->kind == ast::StmtKind::Unroll;
      body.push_back(std::move(stmt));
      if (is_block || accept(TokenKind::Semicolon) || at(TokenKind::RBrace)) continue;
      expected("';' or '}'");
      return false;
    }
  }

  StmtPtr parse_stmt() {
    const Token& t = cur();
    if (t.kind == TokenKind::Ident && t.text == "if") return parse_if();
    if (t.kind == TokenKind::Ident && t.text == "while") return parse_while();
    if (t.kind == TokenKind::Ident && t.text == "unroll") return parse_unroll();
    if (t.kind == TokenKind::Ident && (t.text == "break" || t.text == "continue")) {
      const Token keyword = take();
      return std::make_unique<ast::LoopJump>(keyword.location, keyword.text == "break"
                                                                   ? ast::StmtKind::Break
                                                                   : ast::StmtKind::Continue);
    }
    if (t.kind == TokenKind::Ident && is_keyword(t.text) && t.text != "else") {
      error(t.location, fmt::format("'{}' is not supported yet", t.text));
      return nullptr;
    }
    if (t.kind == TokenKind::MapName) {
      const SourceLocation start = t.location;
      std::unique_ptr<ast::Map> map = parse_map();
      if (!map) return nullptr;
      ExprPtr value = parse_assigned_value(*map);
      if (!value) return nullptr;
      return std::make_unique<ast::AssignMap>(start, std::move(map), std::move(value));
    }
    if (t.kind == TokenKind::Variable) {
      const Token name = take();
      auto var = std::make_unique<ast::Variable>(name.location, name.text);
      ExprPtr value = parse_assigned_value(*var);
      if (!value) return nullptr;
      return std::make_unique<ast::AssignVar>(name.location, std::move(var), std::move(value));
    }
    const SourceLocation start = t.location;
    ExprPtr expr = parse_expr();
    if (!expr) return nullptr;
    return std::make_unique<ast::ExprStmt>(start, std::move(expr));
  }

  /// After "@m[k]" or "$v" at the start of a statement: "= e", "op= e", "++" or "--".
  /// Compound forms become plain assignments of "target op e".
  ExprPtr parse_assigned_value(const ast::Expr& target) {
    const Token& t = cur();
    if (t.kind == TokenKind::Assign) {
      take();
      return parse_expr();
    }
    if (std::optional<BinaryOp> op = compound_op(t.kind)) {
      const Token op_token = take();
      ExprPtr rhs = parse_expr();
      if (!rhs) return nullptr;
      return std::make_unique<ast::Binary>(op_token.location, *op, ast::clone(target),
                                           std::move(rhs));
    }
    if (t.kind == TokenKind::PlusPlus || t.kind == TokenKind::MinusMinus) {
      const Token op_token = take();
      return std::make_unique<ast::Binary>(
          op_token.location, op_token.kind == TokenKind::PlusPlus ? BinaryOp::Add : BinaryOp::Sub,
          ast::clone(target), std::make_unique<ast::Integer>(op_token.location, 1));
    }
    expected("'='");
    return nullptr;
  }

  StmtPtr parse_if() {
    const Token keyword = take();
    if (!expect(TokenKind::LParen)) return nullptr;
    ExprPtr cond = parse_nested_expr();
    if (!cond || !expect(TokenKind::RParen)) return nullptr;
    auto stmt = std::make_unique<ast::If>(keyword.location, std::move(cond));
    if (!at(TokenKind::LBrace)) {
      expected("'{'");
      return nullptr;
    }
    if (!parse_block(stmt->then_body)) return nullptr;
    if (at_ident("else")) {
      take();
      if (at_ident("if")) {
        if (!enter()) return nullptr;
        StmtPtr nested = parse_if();
        leave();
        if (!nested) return nullptr;
        stmt->else_body.push_back(std::move(nested));
      } else {
        if (!at(TokenKind::LBrace)) {
          expected("'{' or 'if'");
          return nullptr;
        }
        if (!parse_block(stmt->else_body)) return nullptr;
      }
    }
    return stmt;
  }

  StmtPtr parse_while() {
    const Token keyword = take();
    if (!expect(TokenKind::LParen)) return nullptr;
    ExprPtr cond = parse_nested_expr();
    if (!cond || !expect(TokenKind::RParen)) return nullptr;
    auto stmt = std::make_unique<ast::While>(keyword.location, std::move(cond));
    if (!at(TokenKind::LBrace)) {
      expected("'{'");
      return nullptr;
    }
    if (!parse_block(stmt->body)) return nullptr;
    return stmt;
  }

  /// unroll(N) with N an integer literal, as bpftrace's grammar has it.
  StmtPtr parse_unroll() {
    const Token keyword = take();
    if (!expect(TokenKind::LParen)) return nullptr;
    bool negative = accept(TokenKind::Minus);
    if (!at(TokenKind::Integer)) {
      expected("integer (unroll takes a constant count)");
      return nullptr;
    }
    const Token count = take();
    if (!expect(TokenKind::RParen)) return nullptr;
    SourceLocation where = span_from(keyword.location);
    if (negative || count.value < 1) {
      error(where, "unroll minimum value is 1");
      return nullptr;
    }
    if (count.value > 100) {
      error(where, "unroll maximum value is 100");
      return nullptr;
    }
    auto stmt = std::make_unique<ast::Unroll>(where, count.value);
    if (!at(TokenKind::LBrace)) {
      expected("'{'");
      return nullptr;
    }
    if (!parse_block(stmt->body)) return nullptr;
    return stmt;
  }

  // --- expressions ----------------------------------------------------------------------------

  ExprPtr parse_expr() { return parse_ternary(); }

  /// An expression inside brackets: '/' is division again even within a predicate.
  ExprPtr parse_nested_expr() {
    if (!enter()) return nullptr;
    const int saved = predicate_depth_;
    predicate_depth_ = 0;
    ExprPtr e = parse_expr();
    predicate_depth_ = saved;
    leave();
    return e;
  }

  ExprPtr parse_ternary() {
    ExprPtr cond = parse_binary(0);
    if (!cond || !at(TokenKind::Question)) return cond;
    const Token question = take();
    ExprPtr then_expr = parse_nested_expr();
    if (!then_expr || !expect(TokenKind::Colon)) return nullptr;
    if (!enter()) return nullptr;
    ExprPtr else_expr = parse_ternary();
    leave();
    if (!else_expr) return nullptr;
    return std::make_unique<ast::Ternary>(question.location, std::move(cond), std::move(then_expr),
                                          std::move(else_expr));
  }

  ExprPtr parse_binary(size_t level) {
    if (level == kBinaryLevels.size()) return parse_unary();
    ExprPtr lhs = parse_binary(level + 1);
    // A chain "a + b + c" is a tree as deep as it is long: each link counts as a level.
    int links = 0;
    while (lhs) {
      const BinaryLevel* match = nullptr;
      for (const BinaryLevel& candidate : kBinaryLevels[level]) {
        if (at(candidate.token)) match = &candidate;
      }
      // Inside /predicate/, a bare '/' ends the predicate rather than dividing.
      if (match == nullptr || (match->op == BinaryOp::Div && predicate_depth_ > 0)) break;
      if (!enter()) {
        lhs = nullptr;
        break;
      }
      ++links;
      const Token op = take();
      ExprPtr rhs = parse_binary(level + 1);
      if (!rhs) {
        lhs = nullptr;
        break;
      }
      lhs = std::make_unique<ast::Binary>(op.location, match->op, std::move(lhs), std::move(rhs));
    }
    nesting_ -= links;
    return lhs;
  }

  ExprPtr parse_unary() {
    const Token& t = cur();
    std::optional<ast::UnaryOp> op;
    if (t.kind == TokenKind::Minus) op = ast::UnaryOp::Neg;
    if (t.kind == TokenKind::Bang) op = ast::UnaryOp::LNot;
    if (t.kind == TokenKind::Tilde) op = ast::UnaryOp::BNot;
    if (op) {
      const Token op_token = take();
      if (!enter()) return nullptr;
      ExprPtr operand = parse_unary();
      leave();
      if (!operand) return nullptr;
      return std::make_unique<ast::Unary>(op_token.location, *op, std::move(operand));
    }
    if (t.kind == TokenKind::Star) {
      const Token op_token = take();
      ExprPtr operand = parse_unary();
      if (!operand) return nullptr;
      return std::make_unique<ast::Deref>(op_token.location, std::move(operand));
    }
    if (t.kind == TokenKind::Amp) {
      error(t.location, "address-of ('&') is not supported: there are no addressable values");
      return nullptr;
    }
    if (t.kind == TokenKind::PlusPlus || t.kind == TokenKind::MinusMinus) {
      error(t.location, fmt::format("'{}' is only supported as a statement ($x{}, @x{})", t.text,
                                    t.text, t.text));
      return nullptr;
    }
    ExprPtr e = parse_primary();
    if (e && (at(TokenKind::Dot) || at(TokenKind::Arrow))) {
      error(cur().location, "field access is not supported yet");
      return nullptr;
    }
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.kind) {
    case TokenKind::Integer: {
      const Token n = take();
      return std::make_unique<ast::Integer>(n.location, n.value);
    }
    case TokenKind::String: {
      const Token s = take();
      return std::make_unique<ast::String>(s.location, s.text);
    }
    case TokenKind::LParen: {
      const Token open = take();
      if (at(TokenKind::Ident) && !integer_type_named(cur().text).is_none())
        return parse_cast(open);
      if (at(TokenKind::Ident) && looks_like_type(cur().text)) {
        error(cur().location, fmt::format("unknown type '{}' (casts take int8, int16, int32, int64 "
                                          "or their unsigned forms, e.g. uint8)",
                                          cur().text));
        return nullptr;
      }
      if (at_ident("struct") || at_ident("union")) {
        error(cur().location, "struct and union types are not supported: there is no debug "
                              "type information (cast to an integer type, e.g. *(uint32*)(p + 8))");
        return nullptr;
      }
      ExprPtr e = parse_nested_expr();
      if (!e) return nullptr;
      if (at(TokenKind::Comma)) {
        error(cur().location, "tuples are not supported yet");
        return nullptr;
      }
      if (!expect(TokenKind::RParen)) return nullptr;
      return e;
    }
    case TokenKind::Variable: {
      const Token v = take();
      return std::make_unique<ast::Variable>(v.location, v.text);
    }
    case TokenKind::MapName:
      return parse_map();
    case TokenKind::Ident: {
      if (is_keyword(t.text)) {
        expected("expression");
        return nullptr;
      }
      const Token name = take();
      if (!at(TokenKind::LParen)) return std::make_unique<ast::Builtin>(name.location, name.text);
      take();
      auto call = std::make_unique<ast::Call>(name.location, name.text);
      if (!parse_arguments(TokenKind::RParen, call->args)) return nullptr;
      call->location = span_from(name.location);
      return call;
    }
    default:
      expected("expression");
      return nullptr;
    }
  }

  /// After '(' and at an integer type name: "(T)e" or "(T*)e"; casts bind as unary operators.
  ExprPtr parse_cast(const Token& open) {
    const Token name = take();
    const Type target = integer_type_named(name.text);
    bool pointer = false;
    if (accept(TokenKind::Star)) pointer = true;
    if (at(TokenKind::Star)) {
      error(cur().location, "pointers to pointers are not supported (cast to uint64* and "
                            "dereference twice)");
      return nullptr;
    }
    if (!expect(TokenKind::RParen)) return nullptr;
    const SourceLocation where = span_from(open.location);
    ExprPtr operand = parse_unary();
    if (!operand) return nullptr;
    return std::make_unique<ast::Cast>(where, target, pointer, std::move(operand));
  }

  std::unique_ptr<ast::Map> parse_map() {
    const Token name = take();
    auto map = std::make_unique<ast::Map>(name.location, name.text);
    if (accept(TokenKind::LBracket)) {
      if (at(TokenKind::RBracket)) {
        expected("map key");
        return nullptr;
      }
      if (!parse_arguments(TokenKind::RBracket, map->keys)) return nullptr;
      map->location = span_from(name.location);
    }
    return map;
  }

  /// Comma-separated expressions up to and including `close`.
  bool parse_arguments(TokenKind close, std::vector<ExprPtr>& out) {
    if (accept(close)) return true;
    while (true) {
      ExprPtr e = parse_nested_expr();
      if (!e) return false;
      out.push_back(std::move(e));
      if (accept(close)) return true;
      if (!accept(TokenKind::Comma)) {
        expected(fmt::format("',' or {}", describe(close)));
        return false;
      }
    }
  }

  Lexer lexer_;
  Diagnostics& diagnostics_;
  Token token_;
  bool have_token_ = false;
  bool failed_ = false;
  SourceLocation prev_end_;
  int predicate_depth_ = 0;
  int nesting_ = 0; ///< levels entered (enter()/leave())
};

} // namespace

ast::Program parse(std::string_view source, Diagnostics& diagnostics) {
  Parser parser(source, diagnostics);
  return parser.parse_program();
}

} // namespace dprobe::lang
