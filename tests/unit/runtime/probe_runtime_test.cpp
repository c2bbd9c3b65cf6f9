// Whole scripts through ProbeRuntime, replaying the hits of a real program. Expected output was
// printed by bpftrace v0.17.0 on this machine, tracing prog4:
//   char names[6][16] = {"alpha", "beta", "gamma", "beta", "zeta", ""};
//   for (i = 0; i < n; i++) work(i, i % 3, names[i % 6], -i, i * 1000, 7);   // noinline work
// with: bpftrace -e '<script>' -c './prog4 10'
#include "runtime/probe_runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace dprobe::runtime {
namespace {

/// Memory of a fake target: a few strings at fixed addresses; everything else faults.
class FakeMemory : public MemoryReader {
 public:
  static constexpr uint64_t kNames = 0x404040;
  FakeMemory() {
    const char* names[6] = {"alpha", "beta", "gamma", "beta", "zeta", ""};
    bytes_.assign(6 * 16, '\0');
    for (int i = 0; i < 6; ++i)
      std::memcpy(bytes_.data() + i * 16, names[i], std::strlen(names[i]));
    bytes_.resize(4096, '\0'); // the rest of the page is mapped too
  }
  bool read(uint64_t address, void* dst, size_t length) override {
    ++reads;
    if (address < kNames || address - kNames > bytes_.size() ||
        length > bytes_.size() - (address - kNames)) {
      return false;
    }
    std::memcpy(dst, bytes_.data() + (address - kNames), length);
    return true;
  }
  int reads = 0;

 private:
  std::string bytes_;
};

class FailingMemory : public MemoryReader {
 public:
  bool read(uint64_t, void*, size_t) override { return false; }
};

/// Captures what the runtime writes.
class Capture {
 public:
  Capture() : file_(open_memstream(&buffer_, &size_)) {}
  ~Capture() {
    std::fclose(file_);
    std::free(buffer_);
  }
  std::FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    return std::string(buffer_, size_);
  }

 private:
  char* buffer_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

lang::CompiledScript compile_ok(std::string_view source) {
  Result<lang::CompiledScript> r = lang::compile(source, "test.bt");
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(*r) : lang::CompiledScript{};
}

HitContext prog4_hit(int64_t i) {
  HitContext ctx;
  ctx.pid = 4242;
  ctx.tid = 4242;
  ctx.nsecs = 1000 + static_cast<uint64_t>(i);
  std::strcpy(ctx.comm, "prog4");
  const uint64_t args[6] = {static_cast<uint64_t>(i),
                            static_cast<uint64_t>(i % 3),
                            FakeMemory::kNames + static_cast<uint64_t>(i % 6) * 16,
                            static_cast<uint64_t>(-i),
                            static_cast<uint64_t>(i * 1000),
                            7};
  std::memcpy(ctx.regs_args, args, sizeof(args));
  return ctx;
}

/// Runs BEGIN, then the uprobe blocks for each call until exit(), then END, then the maps:
/// the order bpftrace uses.
std::string run_prog4(const lang::CompiledScript& script, int calls, Capture& out,
                      MemoryReader& memory, ProbeRuntime** runtime_out = nullptr) {
  auto runtime = std::make_unique<ProbeRuntime>(script, out.file());
  auto run_kind = [&](lang::ProbeKind kind, const HitContext& ctx) {
    for (const lang::ProbeBlock& block : script.probes) {
      if (block.attach_points[0].kind == kind) runtime->run(block.program_index, ctx, memory);
    }
  };
  run_kind(lang::ProbeKind::Begin, HitContext{});
  for (int i = 0; i < calls && !runtime->exit_requested(); ++i)
    run_kind(lang::ProbeKind::Uprobe, prog4_hit(i));
  run_kind(lang::ProbeKind::End, HitContext{});
  runtime->print_maps();
  EXPECT_EQ(runtime->vm_errors(), 0u);
  if (runtime_out != nullptr) *runtime_out = runtime.release();
  return out.text();
}

TEST(ProbeRuntime, MatchesBpftraceOnPrintfAndMaps) {
  const lang::CompiledScript script = compile_ok(
      "uprobe:./prog4:work { @sum[str(arg2)] = @sum[str(arg2)] + arg0; @n = count(); "
      "@neg[arg1] = arg3; printf(\"%s %d|%-6s|%5.2s|%x\\n\", str(arg2), arg3, str(arg2), "
      "str(arg2), arg4); }");
  Capture out;
  FakeMemory memory;
  EXPECT_EQ(run_prog4(script, 10, out, memory), "alpha 0|alpha |   al|0\n"
                                                "beta -1|beta  |   be|3e8\n"
                                                "gamma -2|gamma |   ga|7d0\n"
                                                "beta -3|beta  |   be|bb8\n"
                                                "zeta -4|zeta  |   ze|fa0\n"
                                                " -5|      |     |1388\n"
                                                "alpha -6|alpha |   al|1770\n"
                                                "beta -7|beta  |   be|1b58\n"
                                                "gamma -8|gamma |   ga|1f40\n"
                                                "beta -9|beta  |   be|2328\n"
                                                "\n"
                                                "\n"
                                                "@n: 10\n"
                                                "@neg[0]: 18446744073709551607\n"
                                                "@neg[2]: 18446744073709551608\n"
                                                "@neg[1]: 18446744073709551609\n"
                                                "@sum[zeta]: 4\n"
                                                "@sum[]: 5\n"
                                                "@sum[alpha]: 6\n"
                                                "@sum[gamma]: 10\n"
                                                "@sum[beta]: 20\n");
}

TEST(ProbeRuntime, BeginEndExitAndAnonymousMap) {
  // bpftrace printed the three @[...] lines (all 1) in this order on that run; their order is
  // the hash table's in bpftrace, by key in dprobe.
  const lang::CompiledScript script = compile_ok(
      "BEGIN { printf(\"begin\\n\"); } uprobe:./prog4:work /arg1 == 2/ { @[arg0, str(arg2)] = "
      "count(); @last = arg0; if (arg0 > 6) { exit(); } } END { printf(\"end\\n\"); }");
  Capture out;
  FakeMemory memory;
  ProbeRuntime* runtime = nullptr;
  EXPECT_EQ(run_prog4(script, 10, out, memory, &runtime), "begin\n"
                                                          "end\n"
                                                          "\n"
                                                          "\n"
                                                          "@[2, gamma]: 1\n"
                                                          "@[5, ]: 1\n"
                                                          "@[8, gamma]: 1\n"
                                                          "@last: 8\n");
  ASSERT_NE(runtime, nullptr);
  EXPECT_TRUE(runtime->exit_requested());
  delete runtime;
}

TEST(ProbeRuntime, MapsNeverWritten) {
  // bpftrace -e 'BEGIN { exit(); } uprobe:./prog:work { @a = count(); @b[1] = count(); @c = arg0;
  // }' (work() never called) printed: "\n\n@a: 0\n\n\n"
  const lang::CompiledScript script = compile_ok(
      "BEGIN { exit(); } uprobe:./prog:work { @a = count(); @b[1] = count(); @c = arg0; }");
  Capture out;
  FakeMemory memory;
  EXPECT_EQ(run_prog4(script, 0, out, memory), "\n\n@a: 0\n\n\n");
}

TEST(ProbeRuntime, MapsPrintInNameOrder) {
  // bpftrace -e 'BEGIN { @z = 1; @a = 2; @m = 3; @B = 4; @_ = 5; exit(); }'
  const lang::CompiledScript script =
      compile_ok("BEGIN { @z = 1; @a = 2; @m = 3; @B = 4; @_ = 5; exit(); }");
  Capture out;
  FakeMemory memory;
  EXPECT_EQ(run_prog4(script, 0, out, memory), "\n\n@B: 4\n@_: 5\n@a: 2\n@m: 3\n@z: 1\n");
}

TEST(ProbeRuntime, NoMapsStillPrintsTheTrailer) {
  // bpftrace -e 'BEGIN { printf("x"); exit(); }' printed "x\n\n"
  const lang::CompiledScript script = compile_ok("BEGIN { printf(\"x\"); exit(); }");
  Capture out;
  FakeMemory memory;
  EXPECT_EQ(run_prog4(script, 0, out, memory), "x\n\n");
}

TEST(ProbeRuntime, EmittedEventsAreBufferedUntilFlushAndPrecedeTheMaps) {
  const lang::CompiledScript script =
      compile_ok("uprobe:./p:f { printf(\"%d %x %s|\\n\", arg0, arg1, comm); @n = count(); }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  uint8_t args[8 + 8 + bytecode::kStringFieldSize] = {};
  bytecode::store_u64_le(args, static_cast<uint64_t>(-7));
  bytecode::store_u64_le(args + 8, 0xbeef);
  std::memcpy(args + 16, "comm", 4);
  runtime.emit_printf(0, args);
  runtime.emit_printf(7, args); // unknown format: nothing
  EXPECT_EQ(out.text(), "");
  runtime.flush();
  EXPECT_EQ(out.text(), "-7 beef comm|\n");
  // Many events: written in blocks, all of them, in order.
  std::string expected = "-7 beef comm|\n";
  for (int i = 0; i < 30000; ++i) {
    bytecode::store_u64_le(args, static_cast<uint64_t>(i));
    runtime.emit_printf(0, args);
    expected += std::to_string(i) + " beef comm|\n";
  }
  EXPECT_TRUE(runtime.merge_map_entry(0, "", 3));
  runtime.print_maps();
  expected += "\n\n@n: 3\n";
  const std::string text = out.text();
  // Compared by size and first difference: a failing EXPECT_EQ would print megabytes.
  EXPECT_EQ(text.size(), expected.size());
  const auto diff = std::mismatch(text.begin(), text.end(), expected.begin(), expected.end());
  EXPECT_EQ(diff.first - text.begin(), static_cast<std::ptrdiff_t>(text.size()))
      << std::string(diff.first, text.end()).substr(0, 40) << " vs "
      << std::string(diff.second, expected.end()).substr(0, 40);
}

TEST(ProbeRuntime, StrOnAFaultingPointerIsEmpty) {
  const lang::CompiledScript script = compile_ok(
      "uprobe:./p:f { printf(\"[%s] [%s]\\n\", str(arg0), str(arg1)); @k[str(arg0)] = count(); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  HitContext ctx;
  ctx.regs_args[0] = 0; // NULL
  ctx.regs_args[1] = 0xffffffffffffff00ull;
  runtime.run(0, ctx, memory);
  runtime.print_maps();
  EXPECT_EQ(out.text(), "[] []\n\n\n@k[]: 1\n");
  EXPECT_EQ(runtime.vm_errors(), 0u);
}

TEST(ProbeRuntime, ContextFieldsReachTheProgram) {
  const lang::CompiledScript script =
      compile_ok("uprobe:./p:f { printf(\"%d %d %d %s|\\n\", pid, tid, nsecs, comm); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  HitContext ctx;
  ctx.pid = 10;
  ctx.tid = 11;
  ctx.nsecs = 12;
  std::memcpy(ctx.comm, "sixteen-chars-xx", 16); // no NUL: must still be cut at 15
  runtime.run(0, ctx, memory);
  EXPECT_EQ(out.text(), "10 11 12 sixteen-chars-x|\n");
}

TEST(ProbeRuntime, StringMapsFollowSetsAndDeletesInOrder) {
  const lang::CompiledScript script =
      compile_ok("uprobe:./p:f { @last[arg1] = str(arg2); @s = comm; @k[str(arg2), arg1] = \"v\"; "
                 "if (arg0 == 4) { delete(@last[0]); } }");
  Capture out;
  FakeMemory memory;
  run_prog4(script, 6, out, memory);
  // As bpftrace prints maps of strings: sorted by key.
  EXPECT_EQ(out.text(), "\n\n@k[, 2]: v\n@k[alpha, 0]: v\n@k[beta, 0]: v\n@k[beta, 1]: v\n"
                        "@k[gamma, 2]: v\n@k[zeta, 1]: v\n@last[1]: zeta\n@last[2]: \n"
                        "@s: prog4\n");
}

TEST(ProbeRuntime, UidGidCpuElapsedAndRegisters) {
  const lang::CompiledScript script = compile_ok(
      "uprobe:./p:f { printf(\"%d %d %d %d %d %d\\n\", uid, gid, cpu, elapsed > 0, reg(\"ip\"), "
      "reg(\"bx\")); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  HitContext ctx;
  ctx.uid = 1000;
  ctx.gid = 50;
  ctx.cpu = 3;
  ctx.nsecs = monotonic_now_ns() + 1000;
  ctx.regs[static_cast<uint32_t>(bytecode::CtxReg::Rip)] = 0x401000;
  ctx.regs[static_cast<uint32_t>(bytecode::CtxReg::Rbx)] = 7;
  runtime.run(0, ctx, memory);
  EXPECT_EQ(out.text(), "1000 50 3 1 4198400 7\n");
}

TEST(ProbeRuntime, TimeAndStrftimeAreFormattedByTheController) {
  const lang::CompiledScript script = compile_ok(
      "uprobe:./p:f { time(\"<%%>\\n\"); printf(\"[%s] [%s]\\n\", strftime(\"%%|\", nsecs), "
      "strftime(\"%Y\", nsecs)); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  HitContext ctx;
  ctx.nsecs = monotonic_now_ns();
  runtime.run(0, ctx, memory);
  const std::string text = out.text();
  ASSERT_EQ(text.size(), std::string("<%>\n[%|] [2026]\n").size()) << text;
  EXPECT_EQ(text.substr(0, 11), "<%>\n[%|] [2");
}

TEST(ProbeRuntime, FullMapsDropUpdates) {
  const lang::CompiledScript script = compile_ok("uprobe:./p:f { @k[arg0] = count(); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  HitContext ctx;
  for (uint64_t i = 0; i < 5000; ++i) {
    ctx.regs_args[0] = i;
    runtime.run(0, ctx, memory);
  }
  EXPECT_EQ(runtime.maps().size(0), 4096u);
  EXPECT_EQ(runtime.maps().dropped_updates(), 5000u - 4096u);
  EXPECT_EQ(runtime.vm_errors(), 0u);
}

TEST(ProbeRuntime, BadProgramIndexCountsAsVmError) {
  const lang::CompiledScript script = compile_ok("BEGIN { @x = 1; }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file());
  runtime.run(7, HitContext{}, memory);
  EXPECT_EQ(runtime.vm_errors(), 1u);
  EXPECT_EQ(runtime.last_status(), bytecode::VmStatus::BadProgram);
}

TEST(MapStore, UpdateLookupRemove) {
  const std::vector<bytecode::MapSchema> schemas = {
      bytecode::MapSchema{"@a", {bytecode::FieldKind::Int}, bytecode::MapValueKind::Int, true, 2}};
  MapStore store(schemas);
  const std::string k1(8, '\1');
  const std::string k2(8, '\2');
  const std::string k3(8, '\3');
  uint64_t v = 0;
  EXPECT_FALSE(store.lookup(0, k1, &v));
  EXPECT_TRUE(store.update(0, k1, bytecode::UpdateOp::Set, 5));
  EXPECT_TRUE(store.update(0, k1, bytecode::UpdateOp::Add, 2));
  EXPECT_TRUE(store.lookup(0, k1, &v));
  EXPECT_EQ(v, 7u);
  EXPECT_TRUE(store.update(0, k2, bytecode::UpdateOp::Set, 1));
  EXPECT_FALSE(store.update(0, k3, bytecode::UpdateOp::Set, 1)); // full
  EXPECT_TRUE(store.update(0, k2, bytecode::UpdateOp::Add, 1));  // existing keys still update
  store.remove(0, k1);
  EXPECT_TRUE(store.update(0, k3, bytecode::UpdateOp::Set, 1));
  EXPECT_FALSE(store.update(0, "short", bytecode::UpdateOp::Set, 1)); // wrong key size
  EXPECT_FALSE(store.update(1, k1, bytecode::UpdateOp::Set, 1));      // no such map
  EXPECT_EQ(store.size(0), 2u);
}

// --- aggregations (expected texts printed by bpftrace v0.17.0 for the same scripts) -------------

std::string run_begin(const lang::CompiledScript& script, ProbeRuntime& runtime, Capture& out) {
  FailingMemory memory;
  for (const lang::ProbeBlock& block : script.probes) {
    if (block.attach_points[0].kind == lang::ProbeKind::Begin) {
      runtime.run(block.program_index, HitContext{}, memory);
    }
  }
  runtime.print_maps();
  EXPECT_EQ(runtime.vm_errors(), 0u);
  return out.text();
}

TEST(ProbeRuntime, AggregationsInBegin) {
  const lang::CompiledScript script = compile_ok(
      "BEGIN { @s[2] = min(4); @s[1] = min(-3); @t[5, \"a\"] = max(7); @t[5, \"b\"] = max(-7); "
      "@u = sum(-3); @v = stats(-10); @v = stats(3); @w[\"x\"] = avg(-7); @w[\"y\"] = avg(7); "
      "@w[\"x\"] = avg(2); exit(); }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  EXPECT_EQ(run_begin(script, runtime, out),
            "\n\n@s[1]: -3\n@s[2]: 4\n@t[5, a]: 7\n@u: -3\n@v: count 2, average -3, total -7\n\n"
            "@w[x]: -2\n@w[y]: 7\n\n");
}

TEST(ProbeRuntime, PrintClearAndZeroOfAggregations) {
  const lang::CompiledScript script = compile_ok(
      "BEGIN { @h = hist(5); zero(@h); print(@h); @l = lhist(5, 0, 10, 1); zero(@l); "
      "@s = stats(4); zero(@s); @a = avg(3); clear(@a); @m = min(3); zero(@m); @x = max(4); "
      "zero(@x); exit(); }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  EXPECT_EQ(run_begin(script, runtime, out),
            "@h: \n\n\n\n\n\n@h: \n\n@l: \n\n@m: 0\n@s: count 0, average 0, total 0\n\n@x: 0\n");
}

TEST(ProbeRuntime, HistAndLhistFromHits) {
  // bpftrace -e 'uprobe:./prog4:work { @h = hist(arg4); @l[arg1] = lhist(arg0, 0, 10, 5); }'
  // -c './prog4 12': arg4 = i * 1000, arg1 = i % 3; the three lhists tie (4 each): key order
  const lang::CompiledScript script =
      compile_ok("uprobe:./prog4:work { @h = hist(arg4); @l[arg1] = lhist(arg0, 0, 10, 5); }");
  Capture out;
  FakeMemory memory;
  EXPECT_EQ(run_prog4(script, 12, out, memory),
            "\n\n"
            "@h: \n"
            "[0]                    1 |@@@@@@@@@@@@@                                       |\n"
            "[1]                    0 |                                                    |\n"
            "[2, 4)                 0 |                                                    |\n"
            "[4, 8)                 0 |                                                    |\n"
            "[8, 16)                0 |                                                    |\n"
            "[16, 32)               0 |                                                    |\n"
            "[32, 64)               0 |                                                    |\n"
            "[64, 128)              0 |                                                    |\n"
            "[128, 256)             0 |                                                    |\n"
            "[256, 512)             0 |                                                    |\n"
            "[512, 1K)              1 |@@@@@@@@@@@@@                                       |\n"
            "[1K, 2K)               1 |@@@@@@@@@@@@@                                       |\n"
            "[2K, 4K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[4K, 8K)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[8K, 16K)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@             |\n"
            "\n"
            "@l[0]: \n"
            "[0, 5)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[5, 10)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "\n"
            "@l[1]: \n"
            "[0, 5)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[5, 10)                1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "\n"
            "@l[2]: \n"
            "[0, 5)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "[5, 10)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
            "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
            "\n");
}

/// Entries held "elsewhere" (as the agent's tables are), for print/clear/zero.
class FakeExternal : public ExternalMaps {
 public:
  std::vector<output::MapEntry> entries(uint32_t map) override {
    return map == 0 ? held : std::vector<output::MapEntry>{};
  }
  void reset(uint32_t map, bool zero_only) override { resets.emplace_back(map, zero_only); }
  bool lookup(uint32_t, std::string_view, std::vector<uint64_t>&) override { return false; }
  std::vector<output::MapEntry> held;
  std::vector<std::pair<uint32_t, bool>> resets;
};

TEST(ProbeRuntime, PrintMergesExternalEntriesAndResetsReachThem) {
  const lang::CompiledScript script =
      compile_ok("BEGIN { @a[1] = avg(10); print(@a); clear(@a); zero(@a); exit(); }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  FakeExternal external;
  std::string one;
  one.resize(8);
  bytecode::store_u64_le(reinterpret_cast<uint8_t*>(one.data()), 1);
  std::string two = one;
  bytecode::store_u64_le(reinterpret_cast<uint8_t*>(two.data()), 2);
  external.held = {output::MapEntry{one, 2, {4}}, output::MapEntry{two, 1, {5}}};
  runtime.set_external_maps(&external);
  FailingMemory memory;
  runtime.run(script.probes[0].program_index, HitContext{}, memory);
  // @a[1]: 10 here plus 4 over 2 there: (10 + 4) / 3 = 4; @a[2]: 5.
  EXPECT_EQ(out.text(), "@a[1]: 4\n@a[2]: 5\n\n");
  const std::vector<std::pair<uint32_t, bool>> resets = {{0, false}, {0, true}};
  EXPECT_EQ(external.resets, resets);
  // A probe's own clear() already happened where it ran: only the runtime's entries go.
  runtime.map_command(0, static_cast<uint32_t>(bytecode::MapCommandKind::Clear), false);
  EXPECT_EQ(external.resets.size(), 2u);
  runtime.set_external_maps(nullptr);
  EXPECT_EQ(runtime.maps().size(0), 0u);
}

TEST(ProbeRuntime, ReadingCountSumMinMaxMapsGivesTheirValue) {
  // bpftrace 0.17 refuses these reads (as it refuses printf("%d", @count)); dprobe reads the
  // value it would print: a missing or zeroed min reads 0, as it prints.
  const lang::CompiledScript script = compile_ok(
      "BEGIN { @z = @q; @q = min(3); @m = min(-7); @r = @m; @x = max(4); @y = @x + 1; "
      "@s = sum(-2); @t = @s * 3; @c = count(); @c = count(); @d = @c; exit(); }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  EXPECT_EQ(run_begin(script, runtime, out),
            "\n\n@c: 2\n@d: 2\n@m: -7\n@q: 3\n@r: -7\n@s: -2\n@t: -6\n@x: 4\n@y: 5\n@z: 0\n");
}

TEST(MapStore, MergesByTheMapsRule) {
  bytecode::MapSchema hist{"@h", {}, bytecode::MapValueKind::Hist, false, 1};
  bytecode::MapSchema max{"@m", {}, bytecode::MapValueKind::Max, true, 1};
  bytecode::MapSchema assigned{"@i", {}, bytecode::MapValueKind::Int, true, 1};
  MapStore store({hist, max, assigned});
  std::vector<uint64_t> buckets(bytecode::kHistBuckets, 0);
  buckets[3] = 2;
  EXPECT_TRUE(store.merge(0, "", buckets));
  EXPECT_TRUE(store.merge(0, "", buckets));
  EXPECT_FALSE(store.merge(0, "", std::vector<uint64_t>{1})) << "wrong value size";
  ASSERT_EQ(store.entries(0).size(), 1u);
  EXPECT_EQ(store.entries(0)[0].word(3), 4u);
  EXPECT_TRUE(store.update(0, "", bytecode::UpdateOp::Bucket, 3));
  EXPECT_EQ(store.entries(0)[0].word(3), 5u);
  EXPECT_FALSE(store.update(0, "", bytecode::UpdateOp::Bucket, bytecode::kHistBuckets));

  EXPECT_TRUE(store.update(1, "", bytecode::UpdateOp::Max, static_cast<uint64_t>(-5)));
  EXPECT_EQ(store.size(1), 0u) << "max() of a negative value creates no entry";
  EXPECT_TRUE(store.merge(1, "", std::vector<uint64_t>{7}));
  EXPECT_TRUE(store.merge(1, "", std::vector<uint64_t>{3}));
  uint64_t value = 0;
  EXPECT_TRUE(store.lookup(1, "", &value));
  EXPECT_EQ(value, 7u);

  EXPECT_TRUE(store.update(2, "", bytecode::UpdateOp::Set, 1));
  EXPECT_TRUE(store.merge(2, "", std::vector<uint64_t>{9}));
  EXPECT_TRUE(store.lookup(2, "", &value));
  EXPECT_EQ(value, 9u) << "an assigned value from elsewhere replaces ours";

  store.zero(0);
  ASSERT_EQ(store.size(0), 1u);
  EXPECT_EQ(store.entries(0)[0].word(3), 0u);
  store.clear(0);
  EXPECT_EQ(store.size(0), 0u);
}

} // namespace
} // namespace dprobe::runtime

namespace dprobe::runtime {
namespace {

TEST(ProbeRuntime, JsonOutput) {
  // bpftrace -f json -e 'BEGIN { printf("hi %d\n", 5); @a = count(); @b[1, "x"] = count();
  //   @e = -4; printf("t\tq\"\n"); exit(); }' printed these lines (after attached_probes).
  auto script = lang::compile("BEGIN { printf(\"hi %d\\n\", 5); @a = count(); "
                              "@b[1, \"x\"] = count(); @e = -4; printf(\"t\\tq\\\"\\n\"); exit(); }",
                              "stdin");
  ASSERT_TRUE(script) << script.error().message;
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(*script, out.file(), OutputFormat::Json);
  runtime.run(0, HitContext{}, memory);
  EXPECT_TRUE(runtime.exit_requested());
  runtime.print_maps();
  EXPECT_EQ(out.text(), "{\"type\": \"printf\", \"data\": \"hi 5\\n\"}\n"
                        "{\"type\": \"printf\", \"data\": \"t\\tq\\\"\\n\"}\n"
                        "\n"
                        "\n"
                        "{\"type\": \"map\", \"data\": {\"@a\": 1}}\n"
                        "{\"type\": \"map\", \"data\": {\"@b\": {\"1,x\": 1}}}\n"
                        "{\"type\": \"map\", \"data\": {\"@e\": -4}}\n");
}

} // namespace
} // namespace dprobe::runtime

namespace dprobe::runtime {
namespace {

/// Entries held elsewhere, read one key at a time (lookup) as a program the runtime runs does.
class LookupExternal : public ExternalMaps {
 public:
  std::vector<output::MapEntry> entries(uint32_t) override { return {}; }
  void reset(uint32_t, bool) override {}
  bool lookup(uint32_t map, std::string_view key, std::vector<uint64_t>& words) override {
    ++lookups;
    auto it = held.find({map, std::string(key)});
    if (it == held.end()) return false;
    words = it->second;
    return true;
  }
  std::map<std::pair<uint32_t, std::string>, std::vector<uint64_t>> held;
  int lookups = 0;
};

TEST(ProbeRuntime, ReadsSeeExternalValuesMergedByTheMapsRule) {
  // @c (count): 2 here + 5 there; @mx (max): 3 here, 9 there; @i (assigned): 1 here, 7 there
  // (the agent's is the newer value, as in the final merge); @k[2] only there; @k[3] nowhere.
  const lang::CompiledScript script = compile_ok(
      "BEGIN { @c = count(); @c = count(); @mx = max(3); @i = 1; @k[9] = 1; "
      "printf(\"%d %d %d %d %d\\n\", @c + 0, @mx + 0, @i, @k[2], @k[3]); "
      "if (@c > 6) { printf(\"over 6\\n\"); } }");
  Capture out;
  ProbeRuntime runtime(script, out.file());
  LookupExternal external;
  uint32_t c = 0, mx = 0, i = 0, k = 0;
  for (uint32_t id = 0; id < script.module.maps.size(); ++id) {
    const std::string& name = script.module.maps[id].name;
    (name == "@c" ? c : name == "@mx" ? mx : name == "@i" ? i : k) = id;
  }
  std::string two(8, '\0');
  bytecode::store_u64_le(reinterpret_cast<uint8_t*>(two.data()), 2);
  external.held[{c, ""}] = {5};
  external.held[{mx, ""}] = {9};
  external.held[{i, ""}] = {7};
  external.held[{k, two}] = {11};
  runtime.set_external_maps(&external);
  FailingMemory memory;
  runtime.run(script.probes[0].program_index, HitContext{}, memory);
  runtime.flush();
  EXPECT_EQ(out.text(), "7 9 7 11 0\nover 6\n");
  EXPECT_GT(external.lookups, 0);
  // Without the external maps, only the runtime's own values.
  runtime.set_external_maps(nullptr);
  Capture out2;
  ProbeRuntime alone(script, out2.file());
  alone.run(script.probes[0].program_index, HitContext{}, memory);
  alone.flush();
  EXPECT_EQ(out2.text(), "2 3 1 0 0\n");
}

TEST(ProbeRuntime, JsonValuesEventsAndStringMaps) {
  // bpftrace -f json -e 'BEGIN { @t["b"] = "y"; @t["a"] = "x\"q"; print(@t); print(5);
  //   print("s\t"); @h = hist(5); print(@h); exit(); }'
  const lang::CompiledScript script = compile_ok(
      "BEGIN { @t[\"b\"] = \"y\"; @t[\"a\"] = \"x\\\"q\"; print(@t); print(5); print(\"s\\t\"); "
      "@h = hist(5); print(@h); exit(); }");
  Capture out;
  FailingMemory memory;
  ProbeRuntime runtime(script, out.file(), OutputFormat::Json);
  runtime.run(script.probes[0].program_index, HitContext{}, memory);
  runtime.print_maps();
  EXPECT_EQ(out.text(),
            "{\"type\": \"map\", \"data\": {\"@t\": {\"a\": \"x\\\"q\", \"b\": \"y\"}}}\n"
            "{\"type\": \"value\", \"data\": 5}\n"
            "{\"type\": \"value\", \"data\": \"s\\t\"}\n"
            "{\"type\": \"hist\", \"data\": {\"@h\": [{\"min\": 4, \"max\": 7, \"count\": 1}]}}\n"
            "\n\n"
            "{\"type\": \"hist\", \"data\": {\"@h\": [{\"min\": 4, \"max\": 7, \"count\": 1}]}}\n"
            "{\"type\": \"map\", \"data\": {\"@t\": {\"a\": \"x\\\"q\", \"b\": \"y\"}}}\n");
}

} // namespace
} // namespace dprobe::runtime
