// The syntax tree. Nodes carry their source location; semantic analysis fills in types and the
// indices codegen needs (map ids, variable slots). New constructs (while, casts, field access,
// uretprobe-only builtins) add node kinds here without changing the existing ones.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lang/attach_point.h"
#include "lang/diagnostics.h"
#include "lang/types.h"

namespace dprobe::lang::ast {

enum class ExprKind : uint8_t {
  Integer,
  String,
  Builtin,
  Call,
  Map,
  Variable,
  Unary,
  Binary,
  Ternary,
  Cast,
  Deref
};

struct Expr {
  Expr(ExprKind k, SourceLocation loc) : kind(k), location(loc) {}
  virtual ~Expr() = default;
  Expr(const Expr&) = delete;
  Expr& operator=(const Expr&) = delete;

  const ExprKind kind;
  SourceLocation location;
  Type type; ///< set by semantic analysis
};
using ExprPtr = std::unique_ptr<Expr>;

struct Integer : Expr {
  Integer(SourceLocation loc, uint64_t v) : Expr(ExprKind::Integer, loc), value(v) {}
  uint64_t value;
};

struct String : Expr {
  String(SourceLocation loc, std::string v) : Expr(ExprKind::String, loc), value(std::move(v)) {}
  std::string value;
};

/// A bare identifier: arg0, pid, comm, nsecs, ...
struct Builtin : Expr {
  Builtin(SourceLocation loc, std::string n) : Expr(ExprKind::Builtin, loc), name(std::move(n)) {}
  std::string name;
};

struct Call : Expr {
  Call(SourceLocation loc, std::string n) : Expr(ExprKind::Call, loc), name(std::move(n)) {}
  std::string name;
  std::vector<ExprPtr> args;
};

struct Map : Expr {
  Map(SourceLocation loc, std::string n) : Expr(ExprKind::Map, loc), name(std::move(n)) {}
  std::string name; ///< with the '@'
  std::vector<ExprPtr> keys;
  int map_id = -1; ///< index into Module::maps, set by semantic analysis
};

struct Variable : Expr {
  Variable(SourceLocation loc, std::string n) : Expr(ExprKind::Variable, loc), name(std::move(n)) {}
  std::string name; ///< with the '$'
};

enum class UnaryOp : uint8_t { Neg, LNot, BNot };

struct Unary : Expr {
  Unary(SourceLocation loc, UnaryOp o, ExprPtr e)
      : Expr(ExprKind::Unary, loc), op(o), operand(std::move(e)) {}
  UnaryOp op;
  ExprPtr operand;
};

enum class BinaryOp : uint8_t {
  Mul,
  Div,
  Mod,
  Add,
  Sub,
  Shl,
  Shr,
  Lt,
  Le,
  Gt,
  Ge,
  Eq,
  Ne,
  BAnd,
  BXor,
  BOr,
  LAnd,
  LOr
};

struct Binary : Expr {
  Binary(SourceLocation loc, BinaryOp o, ExprPtr l, ExprPtr r)
      : Expr(ExprKind::Binary, loc), op(o), lhs(std::move(l)), rhs(std::move(r)) {}
  BinaryOp op;
  ExprPtr lhs, rhs;
};

struct Ternary : Expr {
  Ternary(SourceLocation loc, ExprPtr c, ExprPtr t, ExprPtr e)
      : Expr(ExprKind::Ternary, loc), cond(std::move(c)), then_expr(std::move(t)),
        else_expr(std::move(e)) {}
  ExprPtr cond, then_expr, else_expr;
};

/// (uint8)e, (int32 *)e: `target` is the integer type named (for a pointer cast, its target).
struct Cast : Expr {
  Cast(SourceLocation loc, Type t, bool pointer, ExprPtr e)
      : Expr(ExprKind::Cast, loc), target(t), to_pointer(pointer), operand(std::move(e)) {}
  Type target;
  bool to_pointer;
  ExprPtr operand;
};

/// *e: reads the integer e points to (8 bytes, signed, when e is not a typed pointer).
struct Deref : Expr {
  Deref(SourceLocation loc, ExprPtr e) : Expr(ExprKind::Deref, loc), operand(std::move(e)) {}
  ExprPtr operand;
};

enum class StmtKind : uint8_t { Expr, AssignMap, AssignVar, If, While, Unroll, Break, Continue };

struct Stmt {
  Stmt(StmtKind k, SourceLocation loc) : kind(k), location(loc) {}
  virtual ~Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  const StmtKind kind;
  SourceLocation location;
};
using StmtPtr = std::unique_ptr<Stmt>;

/// A call used as a statement: printf(...), exit(), delete(@m[k]).
struct ExprStmt : Stmt {
  ExprStmt(SourceLocation loc, ExprPtr e) : Stmt(StmtKind::Expr, loc), expr(std::move(e)) {}
  ExprPtr expr;
};

/// @m[k] = value (compound forms are rewritten by the parser: @m += v is @m = @m + v).
struct AssignMap : Stmt {
  AssignMap(SourceLocation loc, std::unique_ptr<Map> m, ExprPtr v)
      : Stmt(StmtKind::AssignMap, loc), map(std::move(m)), value(std::move(v)) {}
  std::unique_ptr<Map> map;
  ExprPtr value;
};

struct AssignVar : Stmt {
  AssignVar(SourceLocation loc, std::unique_ptr<Variable> v, ExprPtr e)
      : Stmt(StmtKind::AssignVar, loc), var(std::move(v)), value(std::move(e)) {}
  std::unique_ptr<Variable> var;
  ExprPtr value;
};

struct If : Stmt {
  If(SourceLocation loc, ExprPtr c) : Stmt(StmtKind::If, loc), cond(std::move(c)) {}
  ExprPtr cond;
  std::vector<StmtPtr> then_body;
  std::vector<StmtPtr> else_body; ///< an "else if" is an If alone in here
};

struct While : Stmt {
  While(SourceLocation loc, ExprPtr c) : Stmt(StmtKind::While, loc), cond(std::move(c)) {}
  ExprPtr cond;
  std::vector<StmtPtr> body;
};

/// unroll(N) { body }: the body N times over (1 <= N <= 100), as bpftrace.
struct Unroll : Stmt {
  Unroll(SourceLocation loc, uint64_t n) : Stmt(StmtKind::Unroll, loc), count(n) {}
  uint64_t count;
  std::vector<StmtPtr> body;
};

/// break or continue (kind tells which), only inside a while loop.
struct LoopJump : Stmt {
  LoopJump(SourceLocation loc, StmtKind k) : Stmt(k, loc) {}
};

struct Probe {
  std::vector<AttachPoint> attach_points;
  ExprPtr predicate; ///< may be null
  std::vector<StmtPtr> body;
  SourceLocation location;
};

struct Program {
  std::vector<Probe> probes;
};

/// Deep copy of an expression (types and ids included).
[[nodiscard]] ExprPtr clone(const Expr& expr);

/// The operator as written: "+", "<<", "&&".
[[nodiscard]] const char* spelling(BinaryOp op);
[[nodiscard]] const char* spelling(UnaryOp op);

} // namespace dprobe::lang::ast
