// Scripts compiled and run on the VM against a fake host: what the maps hold and what printf
// prints afterwards.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "../bytecode/fake_host.h"
#include "bytecode/module.h"
#include "bytecode/vm.h"
#include "lang/compiler.h"
#include "output/map_printer.h"
#include "output/printf_format.h"

namespace dprobe::lang {
namespace {

using bytecode::VmStatus;

class Script {
 public:
  explicit Script(std::string_view source) {
    Result<CompiledScript> compiled = compile(source, "test.bt");
    if (!compiled) {
      ADD_FAILURE() << compiled.error().message;
      return;
    }
    script_ = std::move(*compiled);
    tables_ = std::make_unique<bytecode::VmModuleTables>(script_.module);
  }

  [[nodiscard]] bool ok() const { return tables_ != nullptr; }
  const CompiledScript& compiled() const { return script_; }

  /// Runs probe block `probe` for one hit with the given args.
  VmStatus hit(size_t probe, std::initializer_list<uint64_t> args = {}) {
    bytecode::VmContext context = context_;
    size_t i = 0;
    for (uint64_t a : args)
      context.args[i++] = a;
    return bytecode::vm_run(tables_->program(script_.probes.at(probe).program_index),
                            tables_->view(), context, fake.host(), *state_);
  }

  /// Everything printf printed so far.
  std::string output() const {
    std::string out;
    for (const auto& [format, args] : fake.printfs) {
      const bytecode::PrintfFormat& f = script_.module.formats.at(format);
      out += output::format_printf(
          output::parse_printf_format(f.format), f.args,
          std::span(reinterpret_cast<const uint8_t*>(args.data()), args.size()));
    }
    return out;
  }

  /// A map's contents as "key -> value" (key as bpftrace prints it, value as int64).
  std::map<std::string, int64_t> map(std::string_view name) const {
    std::map<std::string, int64_t> out;
    for (size_t id = 0; id < script_.module.maps.size(); ++id) {
      if (script_.module.maps[id].name != name) continue;
      for (const auto& [key, value] : fake.maps) {
        if (key.first == id) {
          out[output::format_key(script_.module.maps[id].key, key.second)] =
              static_cast<int64_t>(value);
        }
      }
    }
    return out;
  }

  int64_t scalar(std::string_view name) const {
    const auto m = map(name);
    return m.empty() ? 0 : m.begin()->second;
  }

  const bytecode::MapSchema* schema(std::string_view name) const {
    for (const auto& s : script_.module.maps) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  bytecode::testing::FakeHost fake;
  bytecode::VmContext context_{};

 private:
  CompiledScript script_;
  std::unique_ptr<bytecode::VmModuleTables> tables_;
  std::unique_ptr<bytecode::VmState> state_ = std::make_unique<bytecode::VmState>();
};

using Map = std::map<std::string, int64_t>;

TEST(CompileRun, CountsAndKeys) {
  Script s(
      "uprobe:./prog:work { @c = count(); @k[arg0] = count(); @m[arg0 % 2, arg1] = count(); }");
  ASSERT_TRUE(s.ok());
  for (uint64_t i = 0; i < 5; ++i)
    EXPECT_EQ(s.hit(0, {i, i * 10}), VmStatus::Ok);
  EXPECT_EQ(s.scalar("@c"), 5);
  EXPECT_EQ(s.map("@k"), (Map{{"0", 1}, {"1", 1}, {"2", 1}, {"3", 1}, {"4", 1}}));
  EXPECT_EQ(s.map("@m"),
            (Map{{"0, 0", 1}, {"1, 10", 1}, {"0, 20", 1}, {"1, 30", 1}, {"0, 40", 1}}));
  EXPECT_EQ(s.schema("@c")->value, bytecode::MapValueKind::Count);
  EXPECT_TRUE(s.schema("@c")->key.empty());
  EXPECT_EQ(s.schema("@c")->max_entries, 1u);
  EXPECT_EQ(s.schema("@m")->key,
            (std::vector<bytecode::FieldKind>{bytecode::FieldKind::Int, bytecode::FieldKind::Int}));
}

TEST(CompileRun, PrintfArguments) {
  Script s(
      "uprobe:./prog:work { printf(\"x=%d s=%s %5x|%-4s|%c\\n\", arg0, comm, arg1, \"ab\", 65); }");
  ASSERT_TRUE(s.ok());
  std::strcpy(s.context_.comm, "loop");
  s.hit(0, {3, 255});
  s.hit(0, {static_cast<uint64_t>(-1), 16});
  EXPECT_EQ(s.output(), "x=3 s=loop    ff|ab  |A\nx=-1 s=loop    10|ab  |A\n");
}

TEST(CompileRun, PredicateFilters) {
  Script s("uprobe:./prog:work /arg0 > 2 && arg1 != 7/ { @hits = count(); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {1, 0});
  s.hit(0, {3, 7});
  s.hit(0, {4, 0});
  s.hit(0, {5, 0});
  EXPECT_EQ(s.scalar("@hits"), 2);
}

TEST(CompileRun, PredicateWithParenthesizedDivision) {
  Script s("uprobe:./prog:work /(arg0 / 2) == 3/ { @hits = count(); }");
  ASSERT_TRUE(s.ok());
  for (uint64_t i = 0; i < 10; ++i)
    s.hit(0, {i});
  EXPECT_EQ(s.scalar("@hits"), 2); // 6 and 7
}

TEST(CompileRun, IfElseChains) {
  Script s(
      "uprobe:./p:f { if (arg0 == 0) { @r[arg0] = 10; } else if (arg0 == 1) { @r[arg0] = 11; } "
      "else { @r[arg0] = 12; if (arg0 > 5) { @big = count(); } } }");
  ASSERT_TRUE(s.ok());
  for (uint64_t i : {0, 1, 2, 7})
    s.hit(0, {i});
  EXPECT_EQ(s.map("@r"), (Map{{"0", 10}, {"1", 11}, {"2", 12}, {"7", 12}}));
  EXPECT_EQ(s.scalar("@big"), 1);
}

TEST(CompileRun, TernaryIntsAndStrings) {
  Script s("uprobe:./p:f { @v[arg0] = arg0 > 1 ? arg0 * 10 : 5; printf(\"%s\\n\", arg0 ? \"yes\" : "
           "\"no\"); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {0});
  s.hit(0, {3});
  EXPECT_EQ(s.map("@v"), (Map{{"0", 5}, {"3", 30}}));
  EXPECT_EQ(s.output(), "no\nyes\n");
}

TEST(CompileRun, LogicalOperatorsShortCircuit) {
  Script s("uprobe:./p:f { if (arg0 && str(arg1) == \"x\") { @a = 1; } if (arg0 || str(arg1) == "
           "\"x\") { @b = 1; } @c = 3 && 4; @d = 0 || 0; }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {0, 0x1000});              // && stops at arg0
  EXPECT_EQ(s.fake.reads.size(), 1u); // only the || side read the string
  s.fake.reads.clear();
  s.hit(0, {1, 0x1000}); // || stops at arg0
  EXPECT_EQ(s.fake.reads.size(), 1u);
  EXPECT_EQ(s.scalar("@b"), 1);
  EXPECT_EQ(s.map("@a").size(), 0u);
  EXPECT_EQ(s.scalar("@c"), 1);
  EXPECT_EQ(s.scalar("@d"), 0);
}

TEST(CompileRun, ScratchVariables) {
  Script s("uprobe:./p:f { $x = arg0 * 2; $x = $x + 1; $s = str(arg1); $t = $s; $s = \"other\"; "
           "printf(\"%d %s %s %d %d\\n\", $x, $s, $t, $t == \"gamma\", $s != \"other\"); }");
  ASSERT_TRUE(s.ok());
  s.fake.add_memory(0x5000, std::string("gamma\0", 6) + std::string(100, 'z'));
  s.hit(0, {20, 0x5000});
  EXPECT_EQ(s.output(), "41 other gamma 1 0\n");
}

TEST(CompileRun, VariablesArePerProbeAndStartAtZero) {
  Script s("uprobe:./p:f { if (arg0) { $x = 5; } @v[arg0] = $x; } uprobe:./p:g { $x = \"str\"; }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {1});
  s.hit(0, {0}); // $x was assigned only in the branch not taken: reads 0
  EXPECT_EQ(s.map("@v"), (Map{{"0", 0}, {"1", 5}}));
}

TEST(CompileRun, MapReadsAndSelfReference) {
  Script s("uprobe:./p:f { @sum[arg0 % 2] = @sum[arg0 % 2] + arg0; @total += arg0; @n++; "
           "printf(\"%d\\n\", @missing[99]); } END { @missing[1] = 1; }");
  ASSERT_TRUE(s.ok());
  for (uint64_t i = 1; i <= 5; ++i)
    s.hit(0, {i});
  EXPECT_EQ(s.map("@sum"), (Map{{"0", 6}, {"1", 9}}));
  EXPECT_EQ(s.scalar("@total"), 15);
  EXPECT_EQ(s.scalar("@n"), 5);
  EXPECT_EQ(s.output(), "0\n0\n0\n0\n0\n");
  EXPECT_FALSE(s.schema("@sum")->value_signed); // arg0 is unsigned
}

TEST(CompileRun, ArithmeticSemanticsOfBpftrace) {
  // Division, modulo and '>>' are unsigned; comparisons are signed only when both sides are.
  Script s("uprobe:./p:f { printf(\"%ld %ld %ld %ld\\n\", -7 / 2, -7 % 2, -8 >> 1, 1 << 63); "
           "printf(\"%ld %ld %ld %ld\\n\", arg0 < 0, -1 < 0, -1 > arg1, arg0 > 1); "
           "printf(\"%ld %ld %ld\\n\", 7 / arg1, 7 % arg1, 7 % (arg1 + 3)); "
           "printf(\"%ld %ld %ld %ld\\n\", ~5, !5, !0, -(-3)); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {static_cast<uint64_t>(-1), 0});
  EXPECT_EQ(s.output(), "9223372036854775804 1 9223372036854775804 -9223372036854775808\n"
                        "0 1 1 1\n"
                        "0 7 1\n"
                        "-6 0 1 3\n");
}

TEST(CompileRun, SignednessOfMapValues) {
  Script s("uprobe:./p:f { @a = arg0 - 5; @b = 5 - 10; @c = (arg0 ? 1 : 2) - 5; @d = !arg0 - 1; @e "
           "= ~5; @f = -arg0; @g = (1 > 0) - 5; @h = pid; }");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s.schema("@a")->value_signed);
  EXPECT_TRUE(s.schema("@b")->value_signed);
  EXPECT_TRUE(s.schema("@c")->value_signed);
  EXPECT_FALSE(s.schema("@d")->value_signed);
  EXPECT_TRUE(s.schema("@e")->value_signed);
  EXPECT_FALSE(s.schema("@f")->value_signed);
  EXPECT_TRUE(s.schema("@g")->value_signed);
  EXPECT_FALSE(s.schema("@h")->value_signed);
}

TEST(CompileRun, StrReadsAndFaults) {
  Script s("uprobe:./p:f { printf(\"[%s] [%s] [%s] [%s]\\n\", str(arg0), str(arg0, 3), str(arg1), "
           "str(arg0, 0)); @k[str(arg1)] = count(); }");
  ASSERT_TRUE(s.ok());
  s.fake.add_memory(0x7000, std::string(100, 'a'));
  s.hit(0, {0x7000, 0xdead}); // arg1 points nowhere: empty string, no fault
  EXPECT_EQ(s.output(), "[" + std::string(63, 'a') + "] [aaa] [] []\n");
  EXPECT_EQ(s.map("@k"), (Map{{"", 1}}));
}

TEST(CompileRun, Builtins) {
  Script s("uprobe:./p:f { printf(\"%d %d %d %d %d %d %d %d %d %s\\n\", arg0, arg1, arg2, arg3, "
           "arg4, arg5, pid, tid, nsecs, comm); }");
  ASSERT_TRUE(s.ok());
  s.context_.pid = 100;
  s.context_.tid = 101;
  s.context_.nsecs = 999;
  std::strcpy(s.context_.comm, "worker");
  s.hit(0, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(s.output(), "1 2 3 4 5 6 100 101 999 worker\n");
}

TEST(CompileRun, CastsTruncateAndExtend) {
  Script s("uprobe:./p:f { printf(\"%ld %ld %ld %ld %ld %ld\\n\", (int8)arg0, (uint8)arg0, "
           "(int16)arg0, (uint16)arg0, (int32)arg0, (uint32)arg0); "
           "printf(\"%ld %ld\\n\", (uint8)255 + (uint8)1, (int8)-1 == -1); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {0xfffffffffffffc11ull}); // -1007
  EXPECT_EQ(s.output(), "17 17 -1007 64529 -1007 4294966289\n256 1\n");
}

TEST(CompileRun, DereferenceReadsEachWidthAndFaultsToZero) {
  Script s("uprobe:./p:f { printf(\"%ld %ld %ld %ld %ld %ld\\n\", *(uint8*)arg0, "
           "*(int8*)arg0, *(uint16*)(arg0 + 1), *(int32*)arg0, *((int32*)arg0 + 1), *arg1); }");
  ASSERT_TRUE(s.ok());
  s.fake.add_memory(0x7000, std::string("\xfa\xff\xff\xff\x02\x00\x00\x00", 8));
  s.hit(0, {0x7000, 0xdead}); // arg1 points nowhere: 0, and the program goes on
  EXPECT_EQ(s.output(), "250 -6 65535 -6 2 0\n");
}

TEST(CompileRun, PointerArithmeticStepsByTheTargetSize) {
  Script s("uprobe:./p:f { printf(\"%ld %ld %ld\\n\", (uint32*)arg0 + 2 - arg0, "
           "(int8*)arg0 + 3 - arg0, 1 + (uint64*)arg0 - arg0); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {0x1000});
  // As bpftrace 0.17: `p - n` steps back n elements too, so `p + 2 - arg0` is p + 8 - 4 arg0.
  EXPECT_EQ(s.output(), "-12280 3 -28664\n");
}

TEST(CompileRun, WhileBreakContinue) {
  Script s("uprobe:./p:f { $i = 0; $sum = 0; while ($i < arg0) { $i++; if ($i == 2) { continue; } "
           "if ($i > 5) { break; } $sum += $i; } printf(\"%d %d\\n\", $i, $sum); }");
  ASSERT_TRUE(s.ok());
  s.hit(0, {4});   // 1 + 3 + 4
  s.hit(0, {100}); // stops at 6: 1 + 3 + 4 + 5
  s.hit(0, {0});
  EXPECT_EQ(s.output(), "4 8\n6 13\n0 0\n");
}

TEST(CompileRun, NestedLoopsBreakOnlyTheInnerOne) {
  Script s("uprobe:./p:f { $i = 0; $n = 0; while ($i < 3) { $j = 0; while (1) { $j++; "
           "if ($j > $i) { break; } $n++; } $i++; } printf(\"%d\\n\", $n); }");
  ASSERT_TRUE(s.ok());
  s.hit(0);
  EXPECT_EQ(s.output(), "3\n");
}

TEST(CompileRun, RunawayLoopStopsAtTheStepBudget) {
  Script s("uprobe:./p:f { $i = 0; while (1) { $i++; } printf(\"never\\n\"); }");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.hit(0), VmStatus::StepLimit);
  EXPECT_EQ(s.output(), "");
}

TEST(CompileRun, UnrollRepeatsTheBody) {
  Script s("uprobe:./p:f { $i = 1; unroll(5) { $i = $i * 2; } @n = count(); unroll(1) { "
           "printf(\"%d\\n\", $i); } }");
  ASSERT_TRUE(s.ok());
  s.hit(0);
  EXPECT_EQ(s.output(), "32\n");
}

TEST(CompileRun, NewBuiltins) {
  Script s("uprobe:./p:f { printf(\"%d %d %d %d %d %d %d %s %s\\n\", uid, gid, cpu, elapsed, "
           "reg(\"sp\"), reg(\"r12\"), sarg1, probe, func); }");
  ASSERT_TRUE(s.ok());
  s.context_.uid = 1000;
  s.context_.gid = 100;
  s.context_.cpu = 3;
  s.context_.elapsed = 77;
  s.context_.regs[static_cast<uint32_t>(bytecode::CtxReg::Rsp)] = 0x8000;
  s.context_.regs[static_cast<uint32_t>(bytecode::CtxReg::R12)] = 12;
  std::string stack(24, '\0');
  stack[16] = 42; // sarg1: the second word above the return address
  s.fake.add_memory(0x8000, stack);
  s.hit(0);
  EXPECT_EQ(s.output(), "1000 100 3 77 32768 12 42 uprobe:./p:f f\n");
}

TEST(CompileRun, StackArgumentsSixToNine) {
  Script s("uprobe:./p:f { printf(\"%d %d %d %d\\n\", arg6, arg7, arg8, arg9); }");
  ASSERT_TRUE(s.ok());
  s.context_.regs[static_cast<uint32_t>(bytecode::CtxReg::Rsp)] = 0x8000;
  std::string stack(40, '\0');
  for (int i = 0; i < 4; ++i)
    stack[8 * (i + 1)] = static_cast<char>(60 + i);
  s.fake.add_memory(0x8000, stack);
  s.hit(0);
  EXPECT_EQ(s.output(), "60 61 62 63\n");
}

TEST(CompileRun, PrintOfScalars) {
  Script s("uprobe:./p:f { print(5); print(-5); print(comm); print((uint16)-1); print(arg0); }");
  ASSERT_TRUE(s.ok());
  std::strcpy(s.context_.comm, "w");
  s.hit(0, {~0ull});
  EXPECT_EQ(s.output(), "5\n-5\nw\n65535\n18446744073709551615\n");
}

TEST(CompileRun, BufPrintsEscapedBytes) {
  Script s("uprobe:./p:f { printf(\"[%r] [%r] [%r]\\n\", buf(arg0, 5), buf(arg0, 1000), "
           "buf(arg1, 2)); }");
  ASSERT_TRUE(s.ok());
  s.fake.add_memory(0x7000, std::string("a\0\x7f\n\\", 5) + std::string(100, 'z'));
  s.hit(0, {0x7000, 0xdead});
  EXPECT_EQ(s.output(),
            "[a\\x00\\x7f\\x0a\\] [a\\x00\\x7f\\x0a\\" + std::string(59, 'z') + "] [\\x00\\x00]\n");
}

TEST(CompileRun, StringComparisons) {
  Script s("uprobe:./p:f { if (str(arg0) == \"abc\") { @eq = count(); } "
           "if (comm != \"w\") { @ne = count(); } }");
  ASSERT_TRUE(s.ok());
  std::strcpy(s.context_.comm, "w");
  s.fake.add_memory(0x7000, std::string("abc\0", 4) + std::string(64, 'x'));
  s.fake.add_memory(0x8000, std::string("abcd\0", 5) + std::string(64, 'x'));
  s.hit(0, {0x7000});
  s.hit(0, {0x8000});
  EXPECT_EQ(s.scalar("@eq"), 1);
  EXPECT_EQ(s.scalar("@ne"), 0);
}

TEST(CompileRun, EventKindsOfTimeSystemAndStrftime) {
  Result<CompiledScript> c = compile("uprobe:./p:f { time(); time(\"%H\"); printf(\"%s %d\\n\", "
                                     "strftime(\"%Y\", nsecs), 1); system(\"echo %d\", 1); }",
                                     "t", CompileOptions{true});
  ASSERT_TRUE(c.has_value()) << c.error().message;
  const auto& f = c->module.formats;
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].kind, bytecode::EventKind::Time);
  EXPECT_EQ(f[0].format, "%H:%M:%S\n");
  EXPECT_EQ(f[1].format, "%H");
  EXPECT_EQ(f[2].kind, bytecode::EventKind::Printf);
  EXPECT_EQ(f[2].strftime_formats, (std::vector<std::string>{"%Y", ""}));
  EXPECT_EQ(f[3].kind, bytecode::EventKind::System);
  EXPECT_FALSE(compile("BEGIN { system(\"ls\"); }", "t").has_value());
}

TEST(CompileRun, ExitStopsTheProbe) {
  Script s("BEGIN { printf(\"a\\n\"); exit(); printf(\"after\\n\"); @x = 1; }");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.hit(0), VmStatus::Exited);
  EXPECT_EQ(s.fake.exits, 1);
  EXPECT_EQ(s.output(), "a\n");
  EXPECT_TRUE(s.map("@x").empty());
}

TEST(CompileRun, Delete) {
  Script s("BEGIN { @m[1] = 2; @m[2] = 3; delete(@m[2]); @s = 5; delete(@s); @t = 1; }");
  ASSERT_TRUE(s.ok());
  s.hit(0);
  EXPECT_EQ(s.map("@m"), (Map{{"1", 2}}));
  EXPECT_TRUE(s.map("@s").empty());
  EXPECT_EQ(s.scalar("@t"), 1);
}

TEST(CompileRun, AnonymousMapAndStringKeys) {
  Script s("uprobe:./p:f { @[arg0, comm] = count(); @names[comm] = count(); }");
  ASSERT_TRUE(s.ok());
  std::strcpy(s.context_.comm, "prog");
  s.hit(0, {1});
  s.hit(0, {1});
  EXPECT_EQ(s.map("@"), (Map{{"1, prog", 2}}));
  EXPECT_EQ(s.map("@names"), (Map{{"prog", 2}}));
}

TEST(CompileRun, MultipleAttachPointsShareOneProgram) {
  Script s("uprobe:./p:f, uprobe:./p:g+0x10 { @c = count(); } BEGIN { @b = 1; }");
  ASSERT_TRUE(s.ok());
  const CompiledScript& c = s.compiled();
  ASSERT_EQ(c.probes.size(), 2u);
  ASSERT_EQ(c.probes[0].attach_points.size(), 2u);
  EXPECT_EQ(c.probes[0].attach_points[1].symbol, "g");
  EXPECT_EQ(c.probes[0].attach_points[1].offset, 0x10u);
  EXPECT_EQ(c.probes[0].program_index, 0u);
  EXPECT_EQ(c.probes[1].program_index, 1u);
  EXPECT_EQ(c.module.programs[0].name, "uprobe:./p:f,uprobe:./p:g+0x10");
  s.hit(0);
  s.hit(0);
  EXPECT_EQ(s.scalar("@c"), 2);
}

TEST(CompileRun, ProbeAndFuncGiveEachAttachPointItsOwnProgram) {
  Result<CompiledScript> c = compile("uprobe:./p:f, u:./p:g+16 { printf(\"%s %s\\n\", probe, func); } "
                                     "uprobe:./p:h { @x = 1; } BEGIN, END { printf(\"%s\\n\", probe); }",
                                     "t");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(c->module.programs.size(), 5u);
  EXPECT_EQ(c->probes[0].point_programs, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(c->probes[1].program_for(0), 2u);
  EXPECT_EQ(c->probes[2].point_programs, (std::vector<uint32_t>{3, 4}));
  EXPECT_EQ(c->module.programs[1].name, "u:./p:g+16");
  bytecode::VmModuleTables tables(c->module);
  bytecode::testing::FakeHost fake;
  auto state = std::make_unique<bytecode::VmState>();
  std::string out;
  for (uint32_t p : {0u, 1u, 3u, 4u}) {
    fake.printfs.clear();
    ASSERT_EQ(bytecode::vm_run(tables.program(p), tables.view(), bytecode::VmContext{}, fake.host(),
                               *state),
              VmStatus::Ok);
    const auto& [format, args] = fake.printfs.at(0);
    const bytecode::PrintfFormat& f = c->module.formats.at(format);
    out += output::format_printf(output::parse_printf_format(f.format), f.args,
                                 std::span(reinterpret_cast<const uint8_t*>(args.data()), args.size()));
  }
  EXPECT_EQ(out, "uprobe:./p:f f\nuprobe:./p:g+16 g\nBEGIN\nEND\n");
}

TEST(CompileRun, MapsUsedBeforeTheirAssignmentInSourceOrder) {
  Script s("BEGIN { printf(\"%d\\n\", @later); } uprobe:./p:f { @later = arg0; }");
  ASSERT_TRUE(s.ok());
  s.hit(1, {7});
  s.hit(0);
  EXPECT_EQ(s.output(), "7\n");
}

TEST(CompileRun, MapsInsideKeysAndValues) {
  // New maps first seen inside another map's key or value (a use-after-free once).
  Script s("BEGIN { @b[1] = 2; @a[@b[1], @z[3]] = @c + @d[@e] + 1; @c = 5; @d[0] = 7; @e = 0; "
           "@z[3] = 9; }");
  ASSERT_TRUE(s.ok());
  s.hit(0);
  EXPECT_EQ(s.map("@a"), (Map{{"2, 0", 1}}));
  s.hit(0);
  EXPECT_EQ(s.map("@a"), (Map{{"2, 0", 1}, {"2, 9", 13}}));
}

TEST(CompileRun, MutatedScriptsNeverCrashTheCompiler) {
  const std::string seeds[] = {
      "uprobe:./p:f /arg0 > 1/ { @c[comm, arg1] = count(); $s = str(arg2, 8); if ($s == \"x\") { "
      "printf(\"%s %d\\n\", $s, @c[comm, arg1]); } else { exit(); } }",
      "BEGIN { @x = (1 ? 2 : 3) << 4 % 5; $v = -~!@x; delete(@x); @y[\"k\"] += $v; @y[\"k\"]++; } "
      "END { printf(\"%-5lx|%c\", @y[\"k\"], 65); }",
      "uprobe:./p:f, uprobe:./p:g { $i = 0; while ($i < 3) { $i++; if ($i == 1) { continue; } "
      "break; } unroll(2) { @s[probe, func] = str(arg0); } $p = (int16*)(arg1 + 2); "
      "printf(\"%d %r %s\\n\", *($p + 1), buf(arg0, 4), strftime(\"%H\", nsecs)); "
      "print((uint8)sarg0 + reg(\"sp\")); delete(@s[probe, func]); time(); }",
  };
  uint64_t state = 88172645463325252ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::string alphabet = "{}()[]/@$\"\\;,:+-*%<>=!~&|^?0x1 \nabcifelsprntukomd";
  int compiled = 0;
  for (int round = 0; round < 4500; ++round) {
    std::string text = seeds[round % std::size(seeds)];
    for (int edits = 1 + static_cast<int>(next() % 4); edits > 0; --edits) {
      const size_t pos = next() % (text.size() + 1);
      switch (next() % 3) {
      case 0:
        if (pos < text.size()) text.erase(pos, 1 + next() % 3);
        break;
      case 1:
        text.insert(pos, 1, alphabet[next() % alphabet.size()]);
        break;
      default:
        if (pos < text.size()) text[pos] = alphabet[next() % alphabet.size()];
        break;
      }
    }
    const Result<CompiledScript> r = compile(text, "fuzz.bt"); // verifies what it emits
    if (r) {
      ++compiled;
    } else {
      EXPECT_FALSE(r.error().message.starts_with("internal error")) << text << "\n"
                                                                    << r.error().message;
      EXPECT_TRUE(r.error().message.starts_with("fuzz.bt:")) << text << "\n" << r.error().message;
    }
  }
  EXPECT_GT(compiled, 0);
}

TEST(CompileRun, TooComplexExpression) {
  std::string expr = "1";
  for (int i = 0; i < 70; ++i)
    expr = "1 + (" + expr + ")";
  const Result<CompiledScript> r = compile("BEGIN { @x = " + expr + "; }", "deep.bt");
  ASSERT_FALSE(r);
  const std::string first_line = r.error().message.substr(0, r.error().message.find('\n'));
  EXPECT_TRUE(first_line.starts_with("deep.bt:1:")) << first_line;
  EXPECT_TRUE(first_line.ends_with(": error: expression too complex (out of registers)"))
      << first_line;
}

TEST(CompileRun, TooMuchScratchMemory) {
  std::string script = "BEGIN { ";
  for (int i = 0; i < 130; ++i)
    script += "$s" + std::to_string(i) + " = comm; ";
  script += "}";
  const Result<CompiledScript> r = compile(script, "big.bt");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.substr(0, r.error().message.find('\n')),
            "big.bt:1:1: error: probe needs 8320 bytes of scratch memory, more than 8192");
}

} // namespace
} // namespace dprobe::lang
