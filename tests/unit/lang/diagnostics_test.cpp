// The exact text users see for each mistake: file:line:col, the source line, the caret.
#include "lang/compiler.h"

#include <gtest/gtest.h>

#include <string>

namespace dprobe::lang {
namespace {

std::string compile_error(std::string_view source, std::string_view file = "stdin") {
  const Result<CompiledScript> result = compile(source, file);
  if (result) return "<compiled>";
  return result.error().message;
}

TEST(Diagnostics, FormatHasThreeLines) {
  EXPECT_EQ(format_diagnostic("a\n  bc d\n", "x.bt", 2, 3, "bad thing"),
            "x.bt:2:3: error: bad thing\n"
            "  bc d\n"
            "  ^");
  EXPECT_EQ(format_diagnostic("a\n  bc d\n", "x.bt", 2, 3, "bad thing", 2),
            "x.bt:2:3: error: bad thing\n"
            "  bc d\n"
            "  ^~");
  // Underline never runs past the line; tabs are kept so the caret lines up.
  EXPECT_EQ(format_diagnostic("\tab", "f", 1, 2, "m", 10), "f:1:2: error: m\n\tab\n\t^~");
  EXPECT_EQ(format_diagnostic("ab\r\ncd", "f", 1, 1, "m"), "f:1:1: error: m\nab\n^");
}

struct Case {
  const char* source;
  const char* expected;
};

class DiagnosticsText : public ::testing::TestWithParam<Case> {};

TEST_P(DiagnosticsText, Exact) {
  EXPECT_EQ(compile_error(GetParam().source), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Lang, DiagnosticsText,
    ::testing::Values(
        Case{"BEGIN { foo(1); }", "stdin:1:9: error: unknown function 'foo'\n"
                                  "BEGIN { foo(1); }\n"
                                  "        ^~~~~~"},
        Case{"BEGIN { $x = bar; }", "stdin:1:14: error: unknown identifier 'bar'\n"
                                    "BEGIN { $x = bar; }\n"
                                    "             ^~~"},
        Case{"BEGIN { printf(\"%d\", $y); }",
             "stdin:1:22: error: variable '$y' used before assignment\n"
             "BEGIN { printf(\"%d\", $y); }\n"
             "                     ^~"},
        Case{"BEGIN { @m[1] = 1; @m[\"a\"] = 2; }",
             "stdin:1:20: error: map @m used with keys [string], but earlier with keys [int]\n"
             "BEGIN { @m[1] = 1; @m[\"a\"] = 2; }\n"
             "                   ^~~~~~~"},
        Case{"BEGIN { @m = 1; @m[2] = 2; }",
             "stdin:1:17: error: map @m used with keys [int], but earlier with no keys\n"
             "BEGIN { @m = 1; @m[2] = 2; }\n"
             "                ^~~~~"},
        Case{"BEGIN { @m = 1; @m = count(); }",
             "stdin:1:22: error: type mismatch for @m: assigning 'count' to a map that holds "
             "'int64' values\n"
             "BEGIN { @m = 1; @m = count(); }\n"
             "                     ^~~~~~~"},
        Case{"BEGIN { $x = 1; $x = \"a\"; }", "stdin:1:22: error: type mismatch for $x: assigning "
                                              "'string' to a variable that holds 'int64'\n"
                                              "BEGIN { $x = 1; $x = \"a\"; }\n"
                                              "                     ^~~"},
        Case{"BEGIN { exit(1); }", "stdin:1:9: error: exit() requires no arguments (1 provided)\n"
                                   "BEGIN { exit(1); }\n"
                                   "        ^~~~~~~"},
        Case{"BEGIN { $x = count(); }",
             "stdin:1:14: error: count() should be directly assigned to a map\n"
             "BEGIN { $x = count(); }\n"
             "             ^~~~~~~"},
        Case{"BEGIN { @x = count(1); }", "stdin:1:14: error: count() takes no arguments (1 given)\n"
                                         "BEGIN { @x = count(1); }\n"
                                         "             ^~~~~~~~"},
        Case{"uprobe:./prog:work { printf(\"%d\\n\", retval); }",
             "stdin:1:37: error: 'retval' is only available in uretprobe probes\n"
             "uprobe:./prog:work { printf(\"%d\\n\", retval); }\n"
             "                                    ^~~~~~"},
        Case{"BEGIN { printf(\"%s\\n\", kstack); }",
             "stdin:1:24: error: kernel-only feature 'kstack' is not available in user space "
             "(dprobe has no kernel side)\n"
             "BEGIN { printf(\"%s\\n\", kstack); }\n"
             "                       ^~~~~~"},
        Case{"BEGIN { @x[ksym(1)] = 1; }", "stdin:1:12: error: kernel-only feature 'ksym' is not "
                                           "available in user space (dprobe has no kernel side)\n"
                                           "BEGIN { @x[ksym(1)] = 1; }\n"
                                           "           ^~~~~~~"},
        Case{"kprobe:do_nanosleep { exit(); }",
             "stdin:1:1: error: kernel-only probe type 'kprobe': dprobe has no kernel side "
            "(probe user space with uprobe:PATH:FUNCTION)\n"
             "kprobe:do_nanosleep { exit(); }\n"
             "^~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN:foo { exit(); }", "stdin:1:1: error: BEGIN probes take no arguments\n"
                                      "BEGIN:foo { exit(); }\n"
                                      "^~~~~~~~~"},
        Case{"uprobe:./prog { exit(); }",
             "stdin:1:1: error: uprobe needs a path and a symbol: uprobe:PATH:SYMBOL\n"
             "uprobe:./prog { exit(); }\n"
             "^~~~~~~~~~~~~"},
        Case{"BEGIN { @x[str(1, 2, 3)] = 1; }",
             "stdin:1:12: error: str() takes up to 2 arguments (3 provided)\n"
             "BEGIN { @x[str(1, 2, 3)] = 1; }\n"
             "           ^~~~~~~~~~~~"},
        Case{"BEGIN { @x[str(\"a\")] = 1; }", "stdin:1:16: error: str() expects an integer address "
                                              "as its first argument, not 'string'\n"
                                              "BEGIN { @x[str(\"a\")] = 1; }\n"
                                              "               ^~~"},
        Case{"BEGIN { @x = 1 +; }", "stdin:1:17: error: expected expression, found ';'\n"
                                    "BEGIN { @x = 1 +; }\n"
                                    "                ^"},
        Case{"BEGIN { @x = \"abc; }", "stdin:1:14: error: unterminated string\n"
                                      "BEGIN { @x = \"abc; }\n"
                                      "             ^~~~~~~"},
        Case{"BEGIN {\n  @x = 1;\n", "stdin:2:10: error: expected '}', found end of file\n"
                                     "  @x = 1;\n"
                                     "         ^"},
        Case{"BEGIN { @x = 99999999999999999999; }",
             "stdin:1:14: error: integer literal '99999999999999999999' does not fit in 64 bits\n"
             "BEGIN { @x = 99999999999999999999; }\n"
             "             ^~~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { printf(\"%d\\n\", arg0); }",
             "stdin:1:24: error: 'arg0' is not available in BEGIN probes\n"
             "BEGIN { printf(\"%d\\n\", arg0); }\n"
             "                       ^~~~"},
        Case{"BEGIN { printf(\"%d %d\\n\", 5); }", "stdin:1:9: error: printf: not enough arguments "
                                                   "for format string (1 supplied, 2 expected)\n"
                                                   "BEGIN { printf(\"%d %d\\n\", 5); }\n"
                                                   "        ^~~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { printf(\"%d\\n\", 5, 6); }", "stdin:1:9: error: printf: too many arguments "
                                                   "for format string (2 supplied, 1 expected)\n"
                                                   "BEGIN { printf(\"%d\\n\", 5, 6); }\n"
                                                   "        ^~~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { printf(\"%s\\n\", 5); }", "stdin:1:24: error: printf: %s specifier expects a "
                                                "value of type string (integer supplied)\n"
                                                "BEGIN { printf(\"%s\\n\", 5); }\n"
                                                "                       ^"},
        Case{"BEGIN { printf(\"%-5lx\\n\", \"a\"); }",
             "stdin:1:27: error: printf: %lx specifier expects a value of type integer (string "
             "supplied)\n"
             "BEGIN { printf(\"%-5lx\\n\", \"a\"); }\n"
             "                          ^~~"},
        Case{"BEGIN { printf(5); }",
             "stdin:1:16: error: printf() expects a string literal as its first argument\n"
             "BEGIN { printf(5); }\n"
             "               ^"},
        Case{"BEGIN { printf(); }", "stdin:1:9: error: printf() requires a format string\n"
                                    "BEGIN { printf(); }\n"
                                    "        ^~~~~~~~"},
        Case{"BEGIN { @x = printf(\"a\"); }",
             "stdin:1:14: error: printf() can only be used as a statement\n"
             "BEGIN { @x = printf(\"a\"); }\n"
             "             ^~~~~~~~~~~"},
        Case{"BEGIN { @y = @nope + 1; }",
             "stdin:1:14: error: undefined map '@nope': it is never assigned\n"
             "BEGIN { @y = @nope + 1; }\n"
             "             ^~~~~"},
        Case{"BEGIN { @x = \"a\" + 1; }",
             "stdin:1:18: error: type mismatch for '+': 'string' and 'int64'\n"
             "BEGIN { @x = \"a\" + 1; }\n"
             "                 ^"},
        Case{"BEGIN { @x = -comm; }",
             "stdin:1:14: error: the '-' operator cannot be used on a value of type 'string'\n"
             "BEGIN { @x = -comm; }\n"
             "             ^"},
        Case{"BEGIN { $x = hist(5); }",
             "stdin:1:14: error: hist() should be directly assigned to a map\n"
             "BEGIN { $x = hist(5); }\n"
             "             ^~~~~~~"},
        Case{"BEGIN { @x = 1 + sum(5); }",
             "stdin:1:18: error: sum() should be directly assigned to a map\n"
             "BEGIN { @x = 1 + sum(5); }\n"
             "                 ^~~~~~"},
        Case{"BEGIN { @x = hist(5); @x = count(); }",
             "stdin:1:28: error: type mismatch for @x: assigning 'count' to a map that holds "
             "'hist' values\n"
             "BEGIN { @x = hist(5); @x = count(); }\n"
             "                           ^~~~~~~"},
        Case{"BEGIN { @x = avg(1, 2); }",
             "stdin:1:14: error: avg() takes one argument (2 given)\n"
             "BEGIN { @x = avg(1, 2); }\n"
             "             ^~~~~~~~~"},
        Case{"BEGIN { @x = max(comm); }",
             "stdin:1:18: error: max() expects an integer argument, not 'string'\n"
             "BEGIN { @x = max(comm); }\n"
             "                 ^~~~"},
        Case{"BEGIN { $n = 5; @x = lhist(1, 0, $n, 1); }",
             "stdin:1:34: error: lhist() expects an integer literal as its max argument\n"
             "BEGIN { $n = 5; @x = lhist(1, 0, $n, 1); }\n"
             "                                 ^~"},
        Case{"BEGIN { @x = lhist(1, 10, 5, 1); }",
             "stdin:1:14: error: lhist() min must be less than max (provided min 10 and max 5)\n"
             "BEGIN { @x = lhist(1, 10, 5, 1); }\n"
             "             ^~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = lhist(1, -1, 10, 0); }",
             "stdin:1:14: error: lhist() step must be >= 1 (0 provided)\n"
             "BEGIN { @x = lhist(1, -1, 10, 0); }\n"
             "             ^~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = lhist(1, -1, 10, 1); }",
             "stdin:1:14: error: lhist() min must be non-negative (provided min -1)\n"
             "BEGIN { @x = lhist(1, -1, 10, 1); }\n"
             "             ^~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = lhist(1, 0, 10, 20); }",
             "stdin:1:14: error: lhist() step is too large for the given range (provided step 20 "
             "for range 10)\n"
             "BEGIN { @x = lhist(1, 0, 10, 20); }\n"
             "             ^~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = lhist(1, 0, 100000, 1); }",
             "stdin:1:14: error: lhist() too many buckets, must be <= 1000 (would need 100000)\n"
             "BEGIN { @x = lhist(1, 0, 100000, 1); }\n"
             "             ^~~~~~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = lhist(1, 0, 10, 1); @x = lhist(2, 0, 20, 1); }",
             "stdin:1:39: error: lhist() parameters of @x differ from its earlier lhist(0, 10, 1)\n"
             "BEGIN { @x = lhist(1, 0, 10, 1); @x = lhist(2, 0, 20, 1); }\n"
             "                                      ^~~~~~~~~~~~~~~~~~"},
        Case{"BEGIN { @x = hist(1); printf(\"%d\", @x); }",
             "stdin:1:36: error: @x holds 'hist' values, which cannot be used in an expression\n"
             "BEGIN { @x = hist(1); printf(\"%d\", @x); }\n"
             "                                   ^~"},
        Case{"BEGIN { @x = clear(@y); }",
             "stdin:1:14: error: clear() can only be used as a statement\n"
             "BEGIN { @x = clear(@y); }\n"
             "             ^~~~~~~~~"},
        Case{"BEGIN { @x = \"abc\"; @y = @x; }",
             "stdin:1:26: error: reading the string map @x in a probe is not supported yet (its "
             "values are printed at exit)\n"
             "BEGIN { @x = \"abc\"; @y = @x; }\n"
             "                         ^~"},
        Case{"BEGIN { @x = \"abc\"; @x = 1; }",
             "stdin:1:26: error: type mismatch for @x: assigning 'int64' to a map that holds "
             "'string' values\n"
             "BEGIN { @x = \"abc\"; @x = 1; }\n"
             "                         ^"},
        Case{"BEGIN { @x = ustack; @x = 1; }",
             "stdin:1:27: error: type mismatch for @x: assigning 'int64' to a map that holds "
             "'ustack' values\n"
             "BEGIN { @x = ustack; @x = 1; }\n"
             "                          ^"},
        Case{"BEGIN { $s = ustack; }",
             "stdin:1:14: error: a ustack can be a map key or value, or printed (print(), printf's "
             "%s), but not kept in a variable\n"
             "BEGIN { $s = ustack; }\n"
             "             ^~~~~~"},
        Case{"BEGIN { @[ustack(3, perf)] = count(); }",
             "stdin:1:18: error: ustack() expects a stack mode literal (integer provided)\n"
             "BEGIN { @[ustack(3, perf)] = count(); }\n"
             "                 ^"},
        Case{"BEGIN { @[ustack(perf, 128)] = count(); }",
             "stdin:1:24: error: ustack: the number of frames must be between 1 and 127 (128 "
             "given)\n"
             "BEGIN { @[ustack(perf, 128)] = count(); }\n"
             "                       ^~~"},
        Case{"BEGIN { if (\"a\") { exit(); } }",
             "stdin:1:13: error: if condition must be an integer, not 'string'\n"
             "BEGIN { if (\"a\") { exit(); } }\n"
             "            ^~~"},
        Case{"uprobe:./a:f /comm/ { exit(); }",
             "stdin:1:15: error: predicate must be an integer, not 'string'\n"
             "uprobe:./a:f /comm/ { exit(); }\n"
             "              ^~~~"},
        Case{"BEGIN { @x = 1 ? \"a\" : 2; }",
             "stdin:1:16: error: ternary branches must have the same type: 'string' and 'int64'\n"
             "BEGIN { @x = 1 ? \"a\" : 2; }\n"
             "               ^"},
        Case{"BEGIN {} BEGIN {}", "stdin:1:10: error: more than one BEGIN probe\n"
                                  "BEGIN {} BEGIN {}\n"
                                  "         ^~~~~"},
        Case{"uretprobe:./a:f+1 {}",
             "stdin:1:1: error: uretprobe takes no offset: it probes every exit of 'f'\n"
             "uretprobe:./a:f+1 {}\n"
             "^~~~~~~~~~~~~~~~~"},
        Case{"uretprobe:./a:f, uprobe:./a:g { @x = retval; }",
             "stdin:1:38: error: 'retval' is only available in uretprobe probes\n"
             "uretprobe:./a:f, uprobe:./a:g { @x = retval; }\n"
             "                                     ^~~~~~"},
        Case{"BEGIN { @x = \"a\\q\"; }", "stdin:1:16: error: invalid escape sequence '\\q'\n"
                                         "BEGIN { @x = \"a\\q\"; }\n"
                                         "               ^~"},
        Case{"BEGIN { $1 = 2; }", "stdin:1:9: error: positional parameters are not supported yet\n"
                                  "BEGIN { $1 = 2; }\n"
                                  "        ^~"},
        Case{"BEGIN { printf(\"%s\", "
             "\"0123456789012345678901234567890123456789012345678901234567890123\"); }",
             "stdin:1:22: error: string literal is too long (64 bytes, at most 63)\n"
             "BEGIN { printf(\"%s\", "
             "\"0123456789012345678901234567890123456789012345678901234567890123\"); }\n"
             "                     "
             "^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"},
        Case{"", "stdin:1:1: error: script has no probes\n\n^"},
        Case{"#include <linux/sched.h>\nBEGIN { }",
             "stdin:1:1: error: C preprocessor directives are not supported yet\n"
             "#include <linux/sched.h>\n"
             "^~~~~~~~~~~~~~~~~~~~~~~~"},
        Case{"#!/usr/bin/env bpftrace\nBEGIN { @x = y; }",
             "stdin:2:14: error: unknown identifier 'y'\n"
             "BEGIN { @x = y; }\n"
             "             ^"},
        Case{"\tBEGIN { @x = bar; }", "stdin:1:15: error: unknown identifier 'bar'\n"
                                      "\tBEGIN { @x = bar; }\n"
                                      "\t             ^~~"}));

TEST(Diagnostics, SeveralErrorsAreAllReported) {
  EXPECT_EQ(compile_error("BEGIN {\n  @a = foo;\n  @b = bar(1);\n}", "script.bt"),
            "script.bt:2:8: error: unknown identifier 'foo'\n"
            "  @a = foo;\n"
            "       ^~~\n"
            "script.bt:3:8: error: unknown function 'bar'\n"
            "  @b = bar(1);\n"
            "       ^~~~~~");
}

TEST(Diagnostics, NoCascadeFromAnEarlierError) {
  // $x's assignment fails; its later use must not add "used before assignment", and @y must not
  // add "undefined map".
  EXPECT_EQ(compile_error("BEGIN { $x = nope; @y = $x + 1; printf(\"%d\\n\", @y); }"),
            "stdin:1:14: error: unknown identifier 'nope'\n"
            "BEGIN { $x = nope; @y = $x + 1; printf(\"%d\\n\", @y); }\n"
            "             ^~~~");
}

} // namespace
} // namespace dprobe::lang
