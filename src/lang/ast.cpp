#include "lang/ast.h"

namespace dprobe::lang::ast {

namespace {

template <class T> std::unique_ptr<T> copy_common(std::unique_ptr<T> node, const Expr& from) {
  node->type = from.type;
  return node;
}

} // namespace

ExprPtr clone(const Expr& expr) {
  switch (expr.kind) {
  case ExprKind::Integer: {
    const auto& e = static_cast<const Integer&>(expr);
    return copy_common(std::make_unique<Integer>(e.location, e.value), expr);
  }
  case ExprKind::String: {
    const auto& e = static_cast<const String&>(expr);
    return copy_common(std::make_unique<String>(e.location, e.value), expr);
  }
  case ExprKind::Builtin: {
    const auto& e = static_cast<const Builtin&>(expr);
    return copy_common(std::make_unique<Builtin>(e.location, e.name), expr);
  }
  case ExprKind::Call: {
    const auto& e = static_cast<const Call&>(expr);
    auto copy = std::make_unique<Call>(e.location, e.name);
    for (const ExprPtr& arg : e.args)
      copy->args.push_back(clone(*arg));
    return copy_common(std::move(copy), expr);
  }
  case ExprKind::Map: {
    const auto& e = static_cast<const Map&>(expr);
    auto copy = std::make_unique<Map>(e.location, e.name);
    for (const ExprPtr& key : e.keys)
      copy->keys.push_back(clone(*key));
    copy->map_id = e.map_id;
    return copy_common(std::move(copy), expr);
  }
  case ExprKind::Variable: {
    const auto& e = static_cast<const Variable&>(expr);
    return copy_common(std::make_unique<Variable>(e.location, e.name), expr);
  }
  case ExprKind::Unary: {
    const auto& e = static_cast<const Unary&>(expr);
    return copy_common(std::make_unique<Unary>(e.location, e.op, clone(*e.operand)), expr);
  }
  case ExprKind::Binary: {
    const auto& e = static_cast<const Binary&>(expr);
    return copy_common(std::make_unique<Binary>(e.location, e.op, clone(*e.lhs), clone(*e.rhs)),
                       expr);
  }
  case ExprKind::Ternary: {
    const auto& e = static_cast<const Ternary&>(expr);
    return copy_common(std::make_unique<Ternary>(e.location, clone(*e.cond), clone(*e.then_expr),
                                                 clone(*e.else_expr)),
                       expr);
  }
  case ExprKind::Cast: {
    const auto& e = static_cast<const Cast&>(expr);
    return copy_common(
        std::make_unique<Cast>(e.location, e.target, e.to_pointer, clone(*e.operand)), expr);
  }
  case ExprKind::Deref: {
    const auto& e = static_cast<const Deref&>(expr);
    return copy_common(std::make_unique<Deref>(e.location, clone(*e.operand)), expr);
  }
  }
  return nullptr;
}

const char* spelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Mul:
    return "*";
  case BinaryOp::Div:
    return "/";
  case BinaryOp::Mod:
    return "%";
  case BinaryOp::Add:
    return "+";
  case BinaryOp::Sub:
    return "-";
  case BinaryOp::Shl:
    return "<<";
  case BinaryOp::Shr:
    return ">>";
  case BinaryOp::Lt:
    return "<";
  case BinaryOp::Le:
    return "<=";
  case BinaryOp::Gt:
    return ">";
  case BinaryOp::Ge:
    return ">=";
  case BinaryOp::Eq:
    return "==";
  case BinaryOp::Ne:
    return "!=";
  case BinaryOp::BAnd:
    return "&";
  case BinaryOp::BXor:
    return "^";
  case BinaryOp::BOr:
    return "|";
  case BinaryOp::LAnd:
    return "&&";
  case BinaryOp::LOr:
    return "||";
  }
  return "?";
}

const char* spelling(UnaryOp op) {
  switch (op) {
  case UnaryOp::Neg:
    return "-";
  case UnaryOp::LNot:
    return "!";
  case UnaryOp::BNot:
    return "~";
  }
  return "?";
}

} // namespace dprobe::lang::ast
