#include "lang/parser.h"

#include <gtest/gtest.h>

#include <string>

namespace dprobe::lang {
namespace {

/// The tree as an s-expression, so tests can state its shape in one line.
std::string dump(const ast::Expr& e);

std::string dump_list(const std::vector<ast::ExprPtr>& list) {
  std::string out;
  for (const ast::ExprPtr& e : list)
    out += " " + dump(*e);
  return out;
}

std::string dump(const ast::Expr& e) {
  switch (e.kind) {
  case ast::ExprKind::Integer:
    return std::to_string(static_cast<const ast::Integer&>(e).value);
  case ast::ExprKind::String:
    return "\"" + static_cast<const ast::String&>(e).value + "\"";
  case ast::ExprKind::Builtin:
    return static_cast<const ast::Builtin&>(e).name;
  case ast::ExprKind::Variable:
    return static_cast<const ast::Variable&>(e).name;
  case ast::ExprKind::Call: {
    const auto& c = static_cast<const ast::Call&>(e);
    return "(" + c.name + "()" + dump_list(c.args) + ")";
  }
  case ast::ExprKind::Map: {
    const auto& m = static_cast<const ast::Map&>(e);
    return m.keys.empty() ? m.name : "(" + m.name + "[]" + dump_list(m.keys) + ")";
  }
  case ast::ExprKind::Unary: {
    const auto& u = static_cast<const ast::Unary&>(e);
    return std::string("(") + ast::spelling(u.op) + " " + dump(*u.operand) + ")";
  }
  case ast::ExprKind::Binary: {
    const auto& b = static_cast<const ast::Binary&>(e);
    return std::string("(") + ast::spelling(b.op) + " " + dump(*b.lhs) + " " + dump(*b.rhs) + ")";
  }
  case ast::ExprKind::Ternary: {
    const auto& t = static_cast<const ast::Ternary&>(e);
    return "(? " + dump(*t.cond) + " " + dump(*t.then_expr) + " " + dump(*t.else_expr) + ")";
  }
  case ast::ExprKind::Cast: {
    const auto& c = static_cast<const ast::Cast&>(e);
    return "(cast " + c.target.name() + (c.to_pointer ? "*" : "") + " " + dump(*c.operand) + ")";
  }
  case ast::ExprKind::Deref:
    return "(deref " + dump(*static_cast<const ast::Deref&>(e).operand) + ")";
  }
  return "?";
}

std::string dump(const ast::Stmt& s);

std::string dump_block(const std::vector<ast::StmtPtr>& body) {
  std::string out = "{";
  for (const ast::StmtPtr& s : body)
    out += " " + dump(*s) + ";";
  return out + " }";
}

std::string dump(const ast::Stmt& s) {
  switch (s.kind) {
  case ast::StmtKind::Expr:
    return dump(*static_cast<const ast::ExprStmt&>(s).expr);
  case ast::StmtKind::AssignMap: {
    const auto& a = static_cast<const ast::AssignMap&>(s);
    return dump(*a.map) + " = " + dump(*a.value);
  }
  case ast::StmtKind::AssignVar: {
    const auto& a = static_cast<const ast::AssignVar&>(s);
    return a.var->name + " = " + dump(*a.value);
  }
  case ast::StmtKind::If: {
    const auto& i = static_cast<const ast::If&>(s);
    std::string out = "if " + dump(*i.cond) + " " + dump_block(i.then_body);
    if (!i.else_body.empty()) out += " else " + dump_block(i.else_body);
    return out;
  }
  case ast::StmtKind::While: {
    const auto& w = static_cast<const ast::While&>(s);
    return "while " + dump(*w.cond) + " " + dump_block(w.body);
  }
  case ast::StmtKind::Unroll: {
    const auto& u = static_cast<const ast::Unroll&>(s);
    return "unroll " + std::to_string(u.count) + " " + dump_block(u.body);
  }
  case ast::StmtKind::Break:
    return "break";
  case ast::StmtKind::Continue:
    return "continue";
  }
  return "?";
}

struct Parsed {
  ast::Program program;
  Diagnostics diagnostics;
};

std::unique_ptr<Parsed> parse_ok(std::string_view source) {
  auto p = std::make_unique<Parsed>();
  p->program = parse(source, p->diagnostics);
  EXPECT_TRUE(p->diagnostics.empty()) << p->diagnostics.format(source, "test");
  return p;
}

/// The single probe's body, dumped.
std::string body(std::string_view source) {
  auto p = parse_ok(source);
  if (p->program.probes.size() != 1)
    return "<probes: " + std::to_string(p->program.probes.size()) + ">";
  return dump_block(p->program.probes[0].body);
}

/// The expression of "BEGIN { <expr>; }".
std::string expr(const std::string& text) {
  auto p = parse_ok("BEGIN { " + text + "; }");
  if (p->program.probes.size() != 1 || p->program.probes[0].body.size() != 1) return "<bad>";
  return dump(*p->program.probes[0].body[0]);
}

std::string first_error(std::string_view source) {
  Diagnostics d;
  (void)parse(source, d);
  return d.empty() ? "" : d.errors()[0].message;
}

TEST(Parser, PrecedenceFollowsC) {
  EXPECT_EQ(expr("1 + 2 * 3"), "(+ 1 (* 2 3))");
  EXPECT_EQ(expr("1 - 2 - 3"), "(- (- 1 2) 3)");
  EXPECT_EQ(expr("2 + 3 * 4 - 1 << 1 & 255 | 1 ^ 3"),
            "(| (& (<< (- (+ 2 (* 3 4)) 1) 1) 255) (^ 1 3))");
  EXPECT_EQ(expr("a || b && c == d < e"), "(|| a (&& b (== c (< d e))))");
  EXPECT_EQ(expr("1 == 1 == 1"), "(== (== 1 1) 1)");
  EXPECT_EQ(expr("-a * !b + ~c % d / e"), "(+ (* (- a) (! b)) (/ (% (~ c) d) e))");
  EXPECT_EQ(expr("(1 + 2) * 3"), "(* (+ 1 2) 3)");
  EXPECT_EQ(expr("a ? b : c ? d : e"), "(? a b (? c d e))");
  EXPECT_EQ(expr("a || b ? 1 + 2 : 3"), "(? (|| a b) (+ 1 2) 3)");
}

TEST(Parser, CallsMapsVariables) {
  EXPECT_EQ(expr("printf(\"%d %s\\n\", arg0, str(arg1, 8))"),
            "(printf() \"%d %s\n\" arg0 (str() arg1 8))");
  EXPECT_EQ(expr("exit()"), "(exit())");
  // A map at the start of a statement is an assignment target, so wrap the read.
  EXPECT_EQ(expr("$z = @m[1, \"a\"] + @ + @x[$y]"), "$z = (+ (+ (@m[] 1 \"a\") @) (@x[] $y))");
}

TEST(Parser, Assignments) {
  EXPECT_EQ(body("BEGIN { @c = count(); @k[arg0, comm] = count(); $x = 1; @v = $x }"),
            "{ @c = (count()); (@k[] arg0 comm) = (count()); $x = 1; @v = $x; }");
}

TEST(Parser, CompoundAssignmentsAreRewritten) {
  EXPECT_EQ(body("BEGIN { $x += 2; @m[1] <<= 3; @n++; $y--; @o %= 4 }"),
            "{ $x = (+ $x 2); (@m[] 1) = (<< (@m[] 1) 3); @n = (+ @n 1); $y = (- $y 1); "
            "@o = (% @o 4); }");
}

TEST(Parser, IfElseChains) {
  EXPECT_EQ(body("BEGIN { if (a) { exit() } else if (b) { @x = 1; } else { @y = 2 } @z = 3 }"),
            "{ if a { (exit()); } else { if b { @x = 1; } else { @y = 2; }; }; @z = 3; }");
}

TEST(Parser, SemicolonsAreSeparators) {
  EXPECT_EQ(body("BEGIN { ; @a = 1;; @b = 2 }"), "{ @a = 1; @b = 2; }");
  EXPECT_EQ(body("BEGIN { }"), "{ }");
  EXPECT_EQ(first_error("BEGIN { @a = 1 @b = 2 }"), "expected ';' or '}', found '@b'");
}

TEST(Parser, AttachPointsAndPredicates) {
  auto p = parse_ok("uprobe:./loop:work+4, u:/lib/x.so:f { @a = 1 }\n"
                    "uprobe:./loop:0x1130 /arg0 > 1 && (arg1 / 2) == 3/ { @b = 1 }\n"
                    "BEGIN { } END { }");
  ASSERT_EQ(p->program.probes.size(), 4u);
  const auto& first = p->program.probes[0];
  ASSERT_EQ(first.attach_points.size(), 2u);
  EXPECT_EQ(first.attach_points[0].raw, "uprobe:./loop:work+4");
  EXPECT_EQ(first.attach_points[0].symbol, "work");
  EXPECT_EQ(first.attach_points[0].offset, 4u);
  EXPECT_EQ(first.attach_points[1].path, "/lib/x.so");
  EXPECT_EQ(first.attach_points[1].line, 1);
  EXPECT_EQ(first.attach_points[1].column, 23);
  EXPECT_EQ(first.predicate, nullptr);
  const auto& second = p->program.probes[1];
  EXPECT_EQ(second.attach_points[0].address, std::optional<uint64_t>(0x1130));
  ASSERT_NE(second.predicate, nullptr);
  EXPECT_EQ(dump(*second.predicate), "(&& (> arg0 1) (== (/ arg1 2) 3))");
  EXPECT_EQ(second.attach_points[0].line, 2);
  EXPECT_EQ(p->program.probes[2].attach_points[0].kind, ProbeKind::Begin);
  EXPECT_EQ(p->program.probes[3].attach_points[0].kind, ProbeKind::End);
}

TEST(Parser, SyntaxErrors) {
  EXPECT_EQ(first_error("BEGIN { @x = 1 +; }"), "expected expression, found ';'");
  EXPECT_EQ(first_error("BEGIN { @x = 1; "), "expected '}', found end of file");
  EXPECT_EQ(first_error("BEGIN { @x = 1; } }"), "expected attach point, found '}'");
  EXPECT_EQ(first_error("BEGIN @x = 1; }"), "expected '{', found '@x'");
  EXPECT_EQ(first_error("BEGIN { if 1 { } }"), "expected '(', found '1'");
  EXPECT_EQ(first_error("BEGIN { if (1) @x = 1; }"), "expected '{', found '@x'");
  EXPECT_EQ(first_error("BEGIN { if (1) { } else @x = 1; }"), "expected '{' or 'if', found '@x'");
  EXPECT_EQ(first_error("BEGIN { @x[] = 1; }"), "expected map key, found ']'");
  EXPECT_EQ(first_error("BEGIN { @x[1 = 1; }"), "expected ',' or ']', found '='");
  EXPECT_EQ(first_error("BEGIN { f(1 2); }"), "expected ',' or ')', found '2'");
  EXPECT_EQ(first_error("BEGIN { @x == 1; }"), "expected '=', found '=='");
  EXPECT_EQ(first_error("BEGIN { $x; }"), "expected '=', found ';'");
  EXPECT_EQ(first_error("BEGIN { while 1 { } }"), "expected '(', found '1'");
  EXPECT_EQ(first_error("BEGIN { while (1) @x = 1; }"), "expected '{', found '@x'");
  EXPECT_EQ(first_error("BEGIN { unroll($i) { } }"),
            "expected integer (unroll takes a constant count), found '$i'");
  EXPECT_EQ(first_error("BEGIN { unroll(101) { } }"), "unroll maximum value is 100");
  EXPECT_EQ(first_error("BEGIN { unroll(0) { } }"), "unroll minimum value is 1");
  EXPECT_EQ(first_error("BEGIN { @x = (uint8**)arg0; }"),
            "pointers to pointers are not supported (cast to uint64* and dereference twice)");
  EXPECT_EQ(first_error("BEGIN { @x = (uint8 arg0; }"), "expected ')', found 'arg0'");
  EXPECT_EQ(first_error("BEGIN { @x = (uint9)arg0; }"),
            "unknown type 'uint9' (casts take int8, int16, int32, int64 or their unsigned forms, "
            "e.g. uint8)");
  EXPECT_EQ(first_error("BEGIN { @x = (string)arg0; }"),
            "unknown type 'string' (casts take int8, int16, int32, int64 or their unsigned forms, "
            "e.g. uint8)");
  EXPECT_EQ(first_error("BEGIN { @x = &arg0; }"),
            "address-of ('&') is not supported: there are no addressable values");
  EXPECT_EQ(first_error("BEGIN { @x = (1, 2); }"), "tuples are not supported yet");
  EXPECT_EQ(first_error("BEGIN { @x = arg0->y; }"), "field access is not supported yet");
  EXPECT_EQ(first_error("BEGIN { @x = ++$y; }"),
            "'++' is only supported as a statement ($x++, @x++)");
  EXPECT_EQ(first_error("uprobe:./a:f /arg0 {"), "expected '/', found '{'");
  EXPECT_EQ(first_error("{ }"), "expected attach point, found '{'");
  EXPECT_EQ(first_error("BEGIN, { }"), "expected attach point, found '{'");
}

TEST(Parser, CastsAndDereferences) {
  EXPECT_EQ(expr("@x = (uint8)arg0"), "@x = (cast uint8 arg0)");
  EXPECT_EQ(expr("@x = (int32)arg0 + 1"), "@x = (+ (cast int32 arg0) 1)");
  EXPECT_EQ(expr("@x = *(uint32*)arg0"), "@x = (deref (cast uint32* arg0))");
  EXPECT_EQ(expr("@x = *(int8*)(arg1 + 4)"), "@x = (deref (cast int8* (+ arg1 4)))");
  EXPECT_EQ(expr("@x = **(uint64*)arg0"), "@x = (deref (deref (cast uint64* arg0)))");
  EXPECT_EQ(expr("@x = 2 * *(int16*)arg0"), "@x = (* 2 (deref (cast int16* arg0)))");
  // Not a type name: an ordinary parenthesized expression.
  EXPECT_EQ(expr("@x = (arg0) - 1"), "@x = (- arg0 1)");
}

TEST(Parser, Loops) {
  EXPECT_EQ(body("BEGIN { while ($i < 3) { $i++; if ($i == 2) { continue; } break; } }"),
            "{ while (< $i 3) { $i = (+ $i 1); if (== $i 2) { continue; }; break; }; }");
  EXPECT_EQ(body("BEGIN { unroll(3) { @n = count(); } @m = 1 }"),
            "{ unroll 3 { @n = (count()); }; @m = 1; }");
  EXPECT_EQ(body("BEGIN { while (1) { } @x = 1; }"), "{ while 1 { }; @x = 1; }");
}

TEST(Parser, AttachPointErrorsStopParsing) {
  EXPECT_EQ(first_error("kprobe:do_sys_open { }"),
            "kernel-only probe type 'kprobe': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)");
}

TEST(Parser, CloneKeepsShape) {
  auto p = parse_ok("BEGIN { @x = (a ? @m[1, \"s\"] : -$v) + str(arg0) }");
  const auto& assign = static_cast<const ast::AssignMap&>(*p->program.probes[0].body[0]);
  EXPECT_EQ(dump(*ast::clone(*assign.value)), dump(*assign.value));
}

} // namespace
} // namespace dprobe::lang

namespace dprobe::lang {
namespace {

// Found by the fuzzer: 10^5 nested brackets overflowed the stack of the recursive passes.
std::string nesting_error(const std::string& source) {
  Diagnostics diagnostics;
  (void)parse(source, diagnostics);
  return diagnostics.empty() ? "<no error>" : diagnostics.errors().front().message;
}

std::string repeat(std::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

TEST(Parser, NestingIsBounded) {
  const std::string too_deep = "nested too deeply (more than 256 levels)";
  EXPECT_EQ(nesting_error("BEGIN { @x = " + repeat("(", 200) + "1" + repeat(")", 200) + "; }"),
            "<no error>");
  EXPECT_EQ(nesting_error("BEGIN { @x = 1" + repeat(" + 1", 200) + "; }"), "<no error>");
  EXPECT_EQ(
      nesting_error("BEGIN { @x = " + repeat("(", 100000) + "1" + repeat(")", 100000) + "; }"),
      too_deep);
  EXPECT_EQ(nesting_error("BEGIN { @x = " + repeat("- ", 100000) + "1; }"), too_deep);
  EXPECT_EQ(nesting_error("BEGIN { @x = 1" + repeat(" + 1", 100000) + "; }"), too_deep);
  EXPECT_EQ(nesting_error("BEGIN { @x = " + repeat("1 ? 1 : ", 100000) + "2; }"), too_deep);
  EXPECT_EQ(nesting_error("BEGIN { " + repeat("if (1) { ", 100000)), too_deep);
  EXPECT_EQ(nesting_error("BEGIN { if (1) { } " + repeat("else if (1) { } ", 100000) + "}"),
            too_deep);
}

} // namespace
} // namespace dprobe::lang
