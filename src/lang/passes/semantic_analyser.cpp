// Map types are program-wide and may be used (read) before the assignment that fixes them, as
// in bpftrace: "BEGIN { printf("%d", @x) } uprobe:... { @x = 1 }". So the analysis runs quietly
// until the map table stops changing, then once more reporting errors. Scratch variables are
// per probe and typed by their first assignment in source order.
#include "lang/passes/semantic_analyser.h"

#include <algorithm>

#include <array>
#include <optional>

#include <fmt/format.h>

#include "output/printf_format.h"

namespace dprobe::lang {

namespace {

using bytecode::FieldKind;
using bytecode::MapValueKind;

constexpr size_t kMaxQuietPasses = 8;
constexpr size_t kMaxPrintfArgs = 32;
constexpr size_t kMaxMapKeys = 16;

constexpr std::array<std::string_view, 3> kKernelBuiltins = {"kstack", "curtask", "cgroup"};
constexpr std::array<std::string_view, 6> kLaterBuiltins = {
    "username", "rand", "ctx", "args", "jiffies", "numaid"};
constexpr std::array<std::string_view, 9> kKernelFunctions = {
    "ksym", "kaddr", "kptr", "kstack", "cgroupid", "override", "path", "skboutput", "percpu_kaddr"};
constexpr std::array<std::string_view, 13> kLaterFunctions = {
    "join",   "cat",     "ntop",     "usym",    "uaddr", "uptr",       "signal",
    "strncmp", "sizeof", "offsetof", "macaddr", "bswap", "strcontains"};
/// Functions whose value only a map assignment can take: `@m[k] = hist(x)`.
constexpr std::array<std::string_view, 8> kAggregations = {"count", "sum",   "avg",  "min",
                                                           "max",   "stats", "hist", "lhist"};
/// Whole-map statements: print(@m), clear(@m), zero(@m).
constexpr std::array<std::string_view, 3> kMapCommands = {"print", "clear", "zero"};
/// lhist() with more buckets than this is refused (bpftrace 0.17 allows 1000).
constexpr int64_t kMaxLhistBuckets = 1000;

/// reg("name"): bpftrace's x86-64 register names (pt_regs), and which dprobe can read.
struct RegisterName {
  std::string_view name;
  std::optional<bytecode::CtxReg> reg; ///< nullopt: a kernel-entry register user space lacks
};
constexpr std::array<RegisterName, 21> kRegisters = {{
    {"r15", bytecode::CtxReg::R15},
    {"r14", bytecode::CtxReg::R14},
    {"r13", bytecode::CtxReg::R13},
    {"r12", bytecode::CtxReg::R12},
    {"bp", bytecode::CtxReg::Rbp},
    {"bx", bytecode::CtxReg::Rbx},
    {"r11", bytecode::CtxReg::R11},
    {"r10", bytecode::CtxReg::R10},
    {"r9", bytecode::CtxReg::R9},
    {"r8", bytecode::CtxReg::R8},
    {"ax", bytecode::CtxReg::Rax},
    {"cx", bytecode::CtxReg::Rcx},
    {"dx", bytecode::CtxReg::Rdx},
    {"si", bytecode::CtxReg::Rsi},
    {"di", bytecode::CtxReg::Rdi},
    {"orig_ax", std::nullopt},
    {"ip", bytecode::CtxReg::Rip},
    {"cs", std::nullopt},
    {"flags", bytecode::CtxReg::Rflags},
    {"sp", bytecode::CtxReg::Rsp},
    {"ss", std::nullopt},
}};

bool contains(const auto& list, std::string_view name) {
  for (std::string_view entry : list) {
    if (entry == name) return true;
  }
  return false;
}

/// argN (0..9: 6..9 are read from the stack, as sarg0..3) and sargN (any N up to 99).
std::optional<int> arg_index(std::string_view name) {
  if (name.size() == 4 && name.substr(0, 3) == "arg" && name[3] >= '0' && name[3] <= '9') {
    return name[3] - '0';
  }
  return std::nullopt;
}

std::optional<int> sarg_index(std::string_view name) {
  if (name.size() < 5 || name.size() > 6 || name.substr(0, 4) != "sarg") return std::nullopt;
  int n = 0;
  for (char c : name.substr(4)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (name.size() == 6 && name[4] == '0') return std::nullopt;
  return n;
}

std::string describe_keys(const std::vector<FieldKind>& kinds) {
  if (kinds.empty()) return "no keys";
  std::string out = "keys [";
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) out += ", ";
    out += kinds[i] == FieldKind::Int      ? "int"
           : kinds[i] == FieldKind::String ? "string"
           : bytecode::is_stack_field(kinds[i]) ? "ustack"
                                                : "buffer";
  }
  return out + "]";
}

std::string value_kind_name(MapValueKind kind, bool is_signed) {
  switch (kind) {
  case MapValueKind::Count:
    return "count";
  case MapValueKind::Int:
    return is_signed ? "int64" : "uint64";
  case MapValueKind::Sum:
    return "sum";
  case MapValueKind::Min:
    return "min";
  case MapValueKind::Max:
    return "max";
  case MapValueKind::Avg:
    return "avg";
  case MapValueKind::Stats:
    return "stats";
  case MapValueKind::Hist:
    return "hist";
  case MapValueKind::Lhist:
    return "lhist";
  case MapValueKind::kCount:
    break;
  case MapValueKind::String:
    return "string";
  }
  return "?";
}

MapValueKind aggregation_kind(std::string_view name) {
  if (name == "sum") return MapValueKind::Sum;
  if (name == "min") return MapValueKind::Min;
  if (name == "max") return MapValueKind::Max;
  if (name == "avg") return MapValueKind::Avg;
  if (name == "stats") return MapValueKind::Stats;
  if (name == "hist") return MapValueKind::Hist;
  if (name == "lhist") return MapValueKind::Lhist;
  return MapValueKind::Count;
}

/// bpftrace's word for a printf argument type: "integer" or "string".
std::string printf_type_name(const Type& type) {
  return type.is_string() ? "string" : "integer";
}

class Analyser {
 public:
  Analyser(ast::Program& program, Diagnostics& diagnostics, const AnalyserOptions& options)
      : program_(program), diagnostics_(diagnostics), options_(options) {}

  SemanticResult run() {
    for (size_t pass = 0; pass < kMaxQuietPasses; ++pass) {
      quiet_ = true;
      changed_ = false;
      analyse_program();
      if (!changed_) break;
    }
    quiet_ = false;
    analyse_program();
    SemanticResult result;
    for (const MapState& map : maps_)
      result.maps.push_back(map.schema);
    result.probe_variables = std::move(probe_variables_);
    result.probe_names_attach_point = std::move(probe_names_attach_point_);
    return result;
  }

 private:
  struct MapState {
    bytecode::MapSchema schema;
    bool keys_known = false;
    bool value_known = false;
    bool assigned = false;
  };

  void error(SourceLocation location, std::string message) {
    if (!quiet_) diagnostics_.error(location, std::move(message));
  }

  // --- probes ---------------------------------------------------------------------------------

  void analyse_program() {
    probe_variables_.clear();
    probe_names_attach_point_.clear();
    if (program_.probes.empty()) {
      error(SourceLocation{1, 1, 1}, "script has no probes");
      return;
    }
    check_unique_special_probes();
    for (ast::Probe& probe : program_.probes) {
      variables_.clear();
      in_special_probe_ = false;
      for (const AttachPoint& ap : probe.attach_points) {
        if (ap.kind != ProbeKind::Uprobe) in_special_probe_ = true;
      }
      special_probe_name_ = in_special_probe_ ? first_special_name(probe) : "";
      current_probe_ = &probe;
      loop_depth_ = 0;
      reads_probe_name_ = false;
      if (probe.predicate) {
        const Type t = analyse_expr(*probe.predicate);
        if (!t.is_none() && !t.is_scalar()) {
          error(probe.predicate->location,
                fmt::format("predicate must be an integer, not '{}'", t.name()));
        }
      }
      analyse_block(probe.body);
      probe_variables_.push_back(variables_);
      probe_names_attach_point_.push_back(reads_probe_name_);
    }
    if (!quiet_) report_undefined_maps();
  }

  static std::string first_special_name(const ast::Probe& probe) {
    for (const AttachPoint& ap : probe.attach_points) {
      if (ap.kind == ProbeKind::Begin) return "BEGIN";
      if (ap.kind == ProbeKind::End) return "END";
      if (ap.kind == ProbeKind::Interval) return "interval";
    }
    return "";
  }

  void check_unique_special_probes() {
    bool seen_begin = false;
    bool seen_end = false;
    for (const ast::Probe& probe : program_.probes) {
      for (const AttachPoint& ap : probe.attach_points) {
        if (ap.kind == ProbeKind::Uprobe || ap.kind == ProbeKind::Interval) continue;
        bool& seen = ap.kind == ProbeKind::Begin ? seen_begin : seen_end;
        if (seen) {
          error(SourceLocation{ap.line, ap.column, static_cast<int>(ap.raw.size())},
                fmt::format("more than one {} probe", ap.raw));
        }
        seen = true;
      }
    }
  }

  void report_undefined_maps() {
    for (const auto& [name, location] : map_first_use_) {
      const MapState& map = maps_[static_cast<size_t>(map_ids_.at(name))];
      if (!map.assigned)
        error(location, fmt::format("undefined map '{}': it is never assigned", name));
    }
  }

  // --- statements -----------------------------------------------------------------------------

  void analyse_block(std::vector<ast::StmtPtr>& body) {
    for (ast::StmtPtr& stmt : body)
      analyse_stmt(*stmt);
  }

  void analyse_stmt(ast::Stmt& stmt) {
    switch (stmt.kind) {
    case ast::StmtKind::Expr: {
      auto& s = static_cast<ast::ExprStmt&>(stmt);
      analyse_expr(*s.expr, /*statement=*/true);
      break;
    }
    case ast::StmtKind::AssignMap:
      analyse_map_assignment(static_cast<ast::AssignMap&>(stmt));
      break;
    case ast::StmtKind::AssignVar:
      analyse_var_assignment(static_cast<ast::AssignVar&>(stmt));
      break;
    case ast::StmtKind::If: {
      auto& s = static_cast<ast::If&>(stmt);
      const Type t = analyse_expr(*s.cond);
      if (!t.is_none() && !t.is_scalar()) {
        error(s.cond->location, fmt::format("if condition must be an integer, not '{}'", t.name()));
      }
      analyse_block(s.then_body);
      analyse_block(s.else_body);
      break;
    }
    case ast::StmtKind::While: {
      auto& s = static_cast<ast::While&>(stmt);
      const Type t = analyse_expr(*s.cond);
      if (!t.is_none() && !t.is_scalar()) {
        error(s.cond->location,
              fmt::format("while condition must be an integer, not '{}'", t.name()));
      }
      ++loop_depth_;
      analyse_block(s.body);
      --loop_depth_;
      break;
    }
    case ast::StmtKind::Unroll:
      analyse_block(static_cast<ast::Unroll&>(stmt).body);
      break;
    case ast::StmtKind::Break:
    case ast::StmtKind::Continue:
      if (loop_depth_ == 0) {
        error(stmt.location, fmt::format("{} used outside of a loop",
                                         stmt.kind == ast::StmtKind::Break ? "break" : "continue"));
      }
      break;
    }
  }

  /// The type a value being stored must have, or nullopt after reporting why it cannot be stored.
  std::optional<Type> storable(const ast::Expr& value, const Type& t) {
    switch (t.kind) {
    case TypeKind::None:
      return std::nullopt;
    case TypeKind::Int:
    case TypeKind::String:
    case TypeKind::Pointer:
      return t;
    case TypeKind::Buffer:
    case TypeKind::Timestamp:
      error(value.location, fmt::format("a {} can only be printed (printf's %{}), not stored",
                                        t.name(), t.kind == TypeKind::Buffer ? 'r' : 's'));
      return std::nullopt;
    case TypeKind::Stack:
      error(value.location, "a ustack can be a map key or value, or printed (print(), printf's "
                            "%s), but not kept in a variable");
      return std::nullopt;
    case TypeKind::Void:
      error(value.location, "this expression has no value");
      return std::nullopt;
    case TypeKind::Count:
      error(value.location, "an aggregation (count(), hist(), ...) should be directly assigned to "
                            "a map");
      return std::nullopt;
    }
    return std::nullopt;
  }

  /// What an aggregation call stores: the map's value kind, signedness and lhist parameters.
  struct Aggregation {
    MapValueKind kind = MapValueKind::Count;
    bool is_signed = false;
    int64_t lhist_min = 0, lhist_max = 0, lhist_step = 0;
    FieldKind stack_field = FieldKind::Int; ///< UStack/UStackPerf: an Int map of stack ids
  };

  /// An integer literal, possibly negated: lhist()'s parameters.
  static std::optional<int64_t> literal(const ast::Expr& e) {
    if (e.kind == ast::ExprKind::Integer) {
      return static_cast<int64_t>(static_cast<const ast::Integer&>(e).value);
    }
    if (e.kind == ast::ExprKind::Unary) {
      const auto& u = static_cast<const ast::Unary&>(e);
      if (u.op == ast::UnaryOp::Neg && u.operand->kind == ast::ExprKind::Integer) {
        return static_cast<int64_t>(0 - static_cast<const ast::Integer&>(*u.operand).value);
      }
    }
    return std::nullopt;
  }

  /// Checks an aggregation call's arguments; nullopt after reporting what is wrong.
  std::optional<Aggregation> analyse_aggregation(ast::Call& call) {
    call.type = Type::count();
    Aggregation agg;
    agg.kind = aggregation_kind(call.name);
    const size_t wanted = agg.kind == MapValueKind::Count   ? 0
                          : agg.kind == MapValueKind::Lhist ? 4
                                                            : 1;
    if (call.args.size() != wanted) {
      const std::string count = wanted == 0   ? "no arguments"
                                : wanted == 1 ? "one argument"
                                              : fmt::format("{} arguments", wanted);
      error(call.location,
            fmt::format("{}() takes {} ({} given)", call.name, count, call.args.size()));
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      return std::nullopt;
    }
    if (wanted == 0) return agg;
    const Type t = analyse_expr(*call.args[0]);
    if (t.is_none()) return std::nullopt;
    if (!t.is_int()) {
      error(call.args[0]->location,
            fmt::format("{}() expects an integer argument, not '{}'", call.name, t.name()));
      return std::nullopt;
    }
    agg.is_signed = t.is_signed;
    if (agg.kind != MapValueKind::Lhist) return agg;
    int64_t params[3] = {};
    for (size_t i = 1; i < 4; ++i) {
      analyse_expr(*call.args[i]);
      const std::optional<int64_t> value = literal(*call.args[i]);
      if (!value) {
        error(call.args[i]->location,
              fmt::format("lhist() expects an integer literal as its {} argument",
                          i == 1 ? "min" : i == 2 ? "max" : "step"));
        return std::nullopt;
      }
      params[i - 1] = *value;
    }
    agg.lhist_min = params[0];
    agg.lhist_max = params[1];
    agg.lhist_step = params[2];
    // bpftrace 0.17's checks, in its order and words.
    std::string problem;
    if (agg.lhist_step < 1) {
      problem = fmt::format("lhist() step must be >= 1 ({} provided)", agg.lhist_step);
    } else if (agg.lhist_min < 0) {
      problem = fmt::format("lhist() min must be non-negative (provided min {})", agg.lhist_min);
    } else if (agg.lhist_min > agg.lhist_max) {
      problem = fmt::format("lhist() min must be less than max (provided min {} and max {})",
                            agg.lhist_min, agg.lhist_max);
    } else if (agg.lhist_max - agg.lhist_min < agg.lhist_step) {
      problem = fmt::format("lhist() step is too large for the given range (provided step {} for "
                            "range {})",
                            agg.lhist_step, agg.lhist_max - agg.lhist_min);
    } else if ((agg.lhist_max - agg.lhist_min) / agg.lhist_step > kMaxLhistBuckets) {
      problem = fmt::format("lhist() too many buckets, must be <= {} (would need {})",
                            kMaxLhistBuckets, (agg.lhist_max - agg.lhist_min) / agg.lhist_step);
    }
    if (!problem.empty()) {
      error(call.location, problem);
      return std::nullopt;
    }
    return agg;
  }

  void analyse_map_assignment(ast::AssignMap& stmt) {
    const bool keys_ok = analyse_map_keys(*stmt.map) != nullptr;
    const auto id = static_cast<size_t>(stmt.map->map_id);
    // Assigned even if the value turns out ill-typed: one error, not a second "undefined map".
    maps_[id].assigned = true;
    Aggregation agg;
    agg.kind = MapValueKind::Int;
    agg.is_signed = true;
    if (stmt.value->kind == ast::ExprKind::Call &&
        contains(kAggregations, static_cast<ast::Call&>(*stmt.value).name)) {
      const std::optional<Aggregation> checked =
          analyse_aggregation(static_cast<ast::Call&>(*stmt.value));
      if (!checked) return;
      agg = *checked;
    } else {
      const Type value_type = analyse_expr(*stmt.value);
      if (value_type.kind == TypeKind::Stack) {
        // A stack id in an integer map, printed as the stack.
        agg.is_signed = false;
        agg.stack_field = value_type.stack_perf ? FieldKind::UStackPerf : FieldKind::UStack;
      } else {
        const std::optional<Type> t = storable(*stmt.value, value_type);
        if (!t) return;
        if (t->is_string()) agg.kind = MapValueKind::String;
        agg.is_signed = t->is_int() && t->is_signed;
      }
    }
    const MapValueKind kind = agg.kind;
    stmt.map->type = agg.stack_field != FieldKind::Int
                         ? Type::stack(agg.stack_field == FieldKind::UStackPerf,
                                       bytecode::kMaxStackFrames)
                     : kind == MapValueKind::Int    ? Type::integer(agg.is_signed)
                     : kind == MapValueKind::String ? Type::string()
                                                    : Type::count();
    if (!keys_ok) return;
    // Fetched only now: analysing the value may have added maps (and moved this one).
    MapState* map = &maps_[id];
    if (!map->value_known) {
      map->value_known = true;
      map->schema.value = kind;
      map->schema.value_signed = agg.is_signed;
      map->schema.value_field = agg.stack_field;
      map->schema.lhist_min = agg.lhist_min;
      map->schema.lhist_max = agg.lhist_max;
      map->schema.lhist_step = agg.lhist_step;
      changed_ = true;
    } else if (map->schema.value != kind || map->schema.value_field != agg.stack_field) {
      error(stmt.value->location,
            fmt::format("type mismatch for {}: assigning '{}' to a map that holds '{}' values",
                        map->schema.name,
                        agg.stack_field != FieldKind::Int ? "ustack"
                                                          : value_kind_name(kind, agg.is_signed),
                        map->schema.value_field != FieldKind::Int
                            ? "ustack"
                            : value_kind_name(map->schema.value, map->schema.value_signed)));
    } else if (kind == MapValueKind::Lhist &&
               (map->schema.lhist_min != agg.lhist_min || map->schema.lhist_max != agg.lhist_max ||
                map->schema.lhist_step != agg.lhist_step)) {
      error(stmt.value->location,
            fmt::format("lhist() parameters of {} differ from its earlier lhist({}, {}, {})",
                        map->schema.name, map->schema.lhist_min, map->schema.lhist_max,
                        map->schema.lhist_step));
    }
  }

  void analyse_var_assignment(ast::AssignVar& stmt) {
    const std::string& name = stmt.var->name;
    if (is_positional(name)) {
      error(stmt.var->location, "positional parameters are not supported yet");
      return;
    }
    const std::optional<Type> t = storable(*stmt.value, analyse_expr(*stmt.value));
    if (!t) {
      // Keep later uses from cascading into "used before assignment".
      variables_.try_emplace(name, Type::none());
      return;
    }
    auto [it, inserted] = variables_.try_emplace(name, *t);
    if (!inserted && it->second.is_none()) it->second = *t;
    if (!inserted && !it->second.is_none() && !it->second.same_kind(*t)) {
      error(stmt.value->location,
            fmt::format("type mismatch for {}: assigning '{}' to a variable that holds '{}'", name,
                        t->name(), it->second.name()));
    }
    stmt.var->type = it->second;
  }

  // --- maps -----------------------------------------------------------------------------------

  /// The map's id, creating its entry on first sight.
  int map_id(const ast::Map& map) {
    auto [it, inserted] = map_ids_.try_emplace(map.name, static_cast<int>(maps_.size()));
    if (inserted) {
      MapState state;
      state.schema.name = map.name;
      maps_.push_back(std::move(state));
      changed_ = true;
    }
    map_first_use_.try_emplace(map.name, map.location);
    return it->second;
  }

  /// Types the keys and checks them against the map's; nullptr when they do not fit. The pointer
  /// is only good until the next map is added.
  MapState* analyse_map_keys(ast::Map& map) {
    map.map_id = map_id(map);
    std::vector<FieldKind> kinds;
    bool known = true;
    for (ast::ExprPtr& key : map.keys) {
      const Type t = analyse_expr(*key);
      if (t.is_scalar()) {
        kinds.push_back(FieldKind::Int);
      } else if (t.kind == TypeKind::Stack) {
        kinds.push_back(t.stack_perf ? FieldKind::UStackPerf : FieldKind::UStack);
      } else if (t.is_string()) {
        kinds.push_back(FieldKind::String);
      } else {
        if (!t.is_none()) {
          error(key->location,
                fmt::format("map keys must be integers, strings or stacks, not '{}'", t.name()));
        }
        known = false;
      }
    }
    if (map.keys.size() > kMaxMapKeys) {
      error(map.location,
            fmt::format("too many map keys ({}, at most {})", map.keys.size(), kMaxMapKeys));
      return nullptr;
    }
    if (!known) return nullptr;
    // Only now: the keys (@a[@b[1]]) may have added maps and moved this one.
    MapState& state = maps_[static_cast<size_t>(map.map_id)];
    if (!state.keys_known) {
      state.keys_known = true;
      state.schema.key = kinds;
      state.schema.max_entries = kinds.empty() ? 1 : state.schema.max_entries;
      changed_ = true;
    } else if (state.schema.key != kinds) {
      error(map.location, fmt::format("map {} used with {}, but earlier with {}", map.name,
                                      describe_keys(kinds), describe_keys(state.schema.key)));
      return nullptr;
    }
    return &state;
  }

  Type analyse_map_read(ast::Map& map) {
    MapState* state = analyse_map_keys(map);
    if (state == nullptr || !state->value_known) return Type::none();
    if (state->schema.value == MapValueKind::String) {
      error(map.location, fmt::format("reading the string map {} in a probe is not supported yet "
                                      "(its values are printed at exit)",
                                      map.name));
      return Type::none();
    }
    switch (state->schema.value) {
    case MapValueKind::Count: // reading a count map gives its count as an integer
      return Type::integer(false);
    case MapValueKind::Min:
    case MapValueKind::Max:
      return Type::integer(true);
    case MapValueKind::Int:
      if (bytecode::is_stack_field(state->schema.value_field)) {
        return Type::stack(state->schema.value_field == FieldKind::UStackPerf,
                           bytecode::kMaxStackFrames);
      }
      return Type::integer(state->schema.value_signed);
    case MapValueKind::Sum:
      return Type::integer(state->schema.value_signed);
    default:
      error(map.location,
            fmt::format("{} holds '{}' values, which cannot be used in an expression", map.name,
                        value_kind_name(state->schema.value, state->schema.value_signed)));
      return Type::none();
    }
  }

  // --- expressions ----------------------------------------------------------------------------

  static bool is_call(const ast::Expr& e, std::string_view name) {
    return e.kind == ast::ExprKind::Call && static_cast<const ast::Call&>(e).name == name;
  }

  static bool is_positional(std::string_view name) {
    return name.size() > 1 && name[1] >= '0' && name[1] <= '9';
  }

  Type analyse_expr(ast::Expr& e, bool statement = false) {
    e.type = compute_type(e, statement);
    return e.type;
  }

  Type compute_type(ast::Expr& e, bool statement) {
    switch (e.kind) {
    case ast::ExprKind::Integer:
      return Type::integer(true);
    case ast::ExprKind::String: {
      const auto& s = static_cast<const ast::String&>(e);
      if (s.value.size() > bytecode::kMaxStringLength) {
        error(e.location, fmt::format("string literal is too long ({} bytes, at most {})",
                                      s.value.size(), bytecode::kMaxStringLength));
        return Type::none();
      }
      return Type::string();
    }
    case ast::ExprKind::Builtin:
      return analyse_builtin(static_cast<ast::Builtin&>(e));
    case ast::ExprKind::Call:
      return analyse_call(static_cast<ast::Call&>(e), statement);
    case ast::ExprKind::Map:
      return analyse_map_read(static_cast<ast::Map&>(e));
    case ast::ExprKind::Variable: {
      const auto& v = static_cast<const ast::Variable&>(e);
      if (is_positional(v.name)) {
        error(e.location, "positional parameters are not supported yet");
        return Type::none();
      }
      const auto it = variables_.find(v.name);
      if (it == variables_.end()) {
        error(e.location, fmt::format("variable '{}' used before assignment", v.name));
        return Type::none();
      }
      return it->second;
    }
    case ast::ExprKind::Unary:
      return analyse_unary(static_cast<ast::Unary&>(e));
    case ast::ExprKind::Binary:
      return analyse_binary(static_cast<ast::Binary&>(e));
    case ast::ExprKind::Ternary:
      return analyse_ternary(static_cast<ast::Ternary&>(e));
    case ast::ExprKind::Cast:
      return analyse_cast(static_cast<ast::Cast&>(e));
    case ast::ExprKind::Deref:
      return analyse_deref(static_cast<ast::Deref&>(e));
    }
    return Type::none();
  }

  Type analyse_cast(ast::Cast& c) {
    const Type t = analyse_expr(*c.operand);
    if (t.is_none()) return t;
    if (!t.is_scalar()) {
      error(c.location, fmt::format("cannot cast a value of type '{}' to '{}{}'", t.name(),
                                    c.target.name(), c.to_pointer ? " *" : ""));
      return Type::none();
    }
    return c.to_pointer ? Type::pointer(c.target.is_signed, c.target.size) : c.target;
  }

  Type analyse_deref(ast::Deref& d) {
    const Type t = analyse_expr(*d.operand);
    if (t.is_none()) return t;
    if (t.is_pointer()) return Type::integer(t.is_signed, t.size);
    if (t.is_int()) return Type::integer(true, 8); // as bpftrace: *addr reads an int64
    error(d.location, fmt::format("cannot dereference a value of type '{}'", t.name()));
    return Type::none();
  }

  Type analyse_builtin(const ast::Builtin& b) {
    const std::string& name = b.name;
    if (arg_index(name) || sarg_index(name)) {
      if (in_special_probe_) {
        error(b.location,
              fmt::format("'{}' is not available in {} probes", name, special_probe_name_));
        return Type::none();
      }
      // At an exit the argument registers hold whatever the function left there (bpftrace
      // refuses them in uretprobes too).
      const auto& points = current_probe_->attach_points;
      if (std::any_of(points.begin(), points.end(), [](const AttachPoint& ap) {
            return ap.kind == ProbeKind::Uprobe && ap.is_return;
          })) {
        error(b.location, fmt::format("'{}' is not available in uretprobe probes: read it in a "
                                      "uprobe and keep it in a map keyed by tid",
                                      name));
        return Type::none();
      }
      return Type::integer(false);
    }
    if (name == "pid" || name == "tid" || name == "nsecs" || name == "uid" || name == "gid" ||
        name == "cpu" || name == "elapsed") {
      return Type::integer(false);
    }
    if (name == "comm") return Type::string();
    if (name == "cpid") {
      if (!options_.child_command) {
        error(b.location, "cpid cannot be used without child command"); // bpftrace's words
        return Type::none();
      }
      return Type::integer(false, 4);
    }
    if (name == "ustack") {
      note_stack_use();
      return Type::stack(false, bytecode::kMaxStackFrames);
    }
    if (name == "probe" || name == "func") return analyse_probe_name(b);
    if (name == "retval") {
      // rax just before an exit instruction runs: only meaningful when every attach point of
      // the block is a return probe.
      const auto& points = current_probe_->attach_points;
      const bool all_return = std::all_of(points.begin(), points.end(), [](const AttachPoint& ap) {
        return ap.kind == ProbeKind::Uprobe && ap.is_return;
      });
      if (!all_return) {
        error(b.location, "'retval' is only available in uretprobe probes");
        return Type::none();
      }
      return Type::integer(false);
    }
    if (contains(kKernelBuiltins, name)) {
      error(
          b.location,
          fmt::format(
              "kernel-only feature '{}' is not available in user space (dprobe has no kernel side)",
              name));
      return Type::none();
    }
    if (contains(kLaterBuiltins, name)) {
      error(b.location, fmt::format("builtin '{}' is not supported yet", name));
      return Type::none();
    }
    if (contains(kAggregations, name) || contains(kMapCommands, name) || name == "str" ||
        name == "printf" || name == "exit" || name == "delete" || name == "buf" || name == "reg" ||
        name == "strftime" || name == "system") {
      error(b.location, fmt::format("'{}' is a function: call it as {}(...)", name, name));
      return Type::none();
    }
    error(b.location, fmt::format("unknown identifier '{}'", name));
    return Type::none();
  }

  /// `probe` and `func` name the attach point a hit came through: constants of each attach
  /// point's own program (codegen makes one per attach point for such a block).
  Type analyse_probe_name(const ast::Builtin& b) {
    const ast::Probe& probe = *current_probe_;
    for (const AttachPoint& ap : probe.attach_points) {
      if (b.name == "func" && ap.kind != ProbeKind::Uprobe) {
        error(b.location, fmt::format("'func' is not available in {} probes",
                                      ap.kind == ProbeKind::Begin ? "BEGIN" : "END"));
        return Type::none();
      }
      if (ap.kind == ProbeKind::Uprobe && ap.address) {
        error(b.location,
              fmt::format("'{}' with an address attach point is not supported yet", b.name));
        return Type::none();
      }
    }
    reads_probe_name_ = true;
    return Type::string();
  }

  Type analyse_reg(ast::Call& call) {
    if (call.args.size() != 1 || call.args[0]->kind != ast::ExprKind::String) {
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      error(call.location, "reg() takes one register name as a string literal, e.g. reg(\"sp\")");
      return Type::none();
    }
    call.args[0]->type = Type::string();
    const std::string& name = static_cast<const ast::String&>(*call.args[0]).value;
    if (in_special_probe_) {
      error(call.location, fmt::format("reg() is not available in {} probes", special_probe_name_));
      return Type::none();
    }
    for (const RegisterName& r : kRegisters) {
      if (r.name != name) continue;
      if (!r.reg) {
        error(call.location, fmt::format("register '{}' only exists on kernel entry, not at a "
                                         "user-space probe",
                                         name));
        return Type::none();
      }
      return Type::integer(false);
    }
    error(call.location,
          fmt::format("'{}' is not a valid register on this architecture (x86_64)", name));
    return Type::none();
  }

  Type analyse_buf(ast::Call& call) {
    for (ast::ExprPtr& arg : call.args)
      analyse_expr(*arg);
    if (call.args.size() != 2) {
      if (call.args.size() == 1 && call.args[0]->type.is_scalar()) {
        error(call.location, "buf() expects a length argument for non-array type integer");
      } else {
        error(call.location,
              fmt::format("buf() takes 2 arguments ({} provided)", call.args.size()));
      }
      return Type::none();
    }
    for (const ast::ExprPtr& arg : call.args) {
      if (!arg->type.is_none() && !arg->type.is_scalar()) {
        error(arg->location,
              fmt::format("buf() expects integer arguments, not '{}'", arg->type.name()));
        return Type::none();
      }
    }
    if (in_special_probe_) {
      error(call.location, fmt::format("buf() is not available in {} probes", special_probe_name_));
      return Type::none();
    }
    return Type::buffer();
  }

  Type analyse_strftime(ast::Call& call) {
    for (size_t i = 1; i < call.args.size(); ++i)
      analyse_expr(*call.args[i]);
    if (call.args.size() != 2) {
      error(call.location,
            fmt::format("strftime() requires two arguments ({} provided)", call.args.size()));
      return Type::none();
    }
    if (call.args[0]->kind != ast::ExprKind::String) {
      analyse_expr(*call.args[0]);
      error(call.args[0]->location, "strftime() expects a string literal as its first argument");
      return Type::none();
    }
    call.args[0]->type = Type::string();
    if (!call.args[1]->type.is_none() && !call.args[1]->type.is_scalar()) {
      error(call.args[1]->location, fmt::format("strftime() expects an integer timestamp, not "
                                                "'{}'",
                                                call.args[1]->type.name()));
      return Type::none();
    }
    return Type::timestamp();
  }

  void analyse_time(ast::Call& call) {
    if (call.args.size() > 1) {
      error(call.location,
            fmt::format("time() takes up to 1 argument ({} provided)", call.args.size()));
      return;
    }
    if (call.args.size() == 1) {
      if (call.args[0]->kind != ast::ExprKind::String) {
        analyse_expr(*call.args[0]);
        error(call.args[0]->location, "time() expects a string literal");
        return;
      }
      call.args[0]->type = Type::string();
    }
  }

  void analyse_print(ast::Call& call) {
    if (call.args.size() != 1) {
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      error(call.location, fmt::format("print() takes 1 argument ({} provided)", call.args.size()));
      return;
    }
    const Type t = analyse_expr(*call.args[0]);
    if (t.is_none() || t.is_int() || t.is_string() || t.kind == TypeKind::Buffer ||
        t.kind == TypeKind::Timestamp || t.kind == TypeKind::Stack) {
      return;
    }
    // bpftrace's words: "unsigned int8 * type passed to print() is not printable"
    error(call.location, fmt::format("{} type passed to print() is not printable", t.name()));
  }

  Type analyse_call(ast::Call& call, bool statement) {
    const std::string& name = call.name;
    if (contains(kAggregations, name)) {
      error(call.location, fmt::format("{}() should be directly assigned to a map", name));
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      return Type::none();
    }
    // print(@m) prints a whole map; print(value) anything else, as bpftrace.
    if (contains(kMapCommands, name) && (name != "print" || prints_whole_map(call))) {
      if (!statement) {
        error(call.location, fmt::format("{}() can only be used as a statement", name));
        return Type::none();
      }
      analyse_map_command(call);
      return Type::void_type();
    }
    if (name == "str") return analyse_str(call);
    if (name == "ustack") return analyse_ustack(call);
    if (name == "reg") return analyse_reg(call);
    if (name == "buf") return analyse_buf(call);
    if (name == "strftime") return analyse_strftime(call);
    if (name == "system" && !options_.unsafe) {
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      error(call.location, "system() is an unsafe function being used in safe mode (run dprobe "
                           "with --unsafe to allow it)");
      return Type::none();
    }
    if (name == "printf" || name == "exit" || name == "delete" || name == "print" ||
        name == "time" || name == "system") {
      if (!statement) {
        error(call.location, fmt::format("{}() can only be used as a statement", name));
        return Type::none();
      }
      if (name == "printf" || name == "system") analyse_printf(call);
      if (name == "print") analyse_print(call);
      if (name == "time") analyse_time(call);
      if (name == "exit" && !call.args.empty()) {
        error(call.location,
              fmt::format("exit() requires no arguments ({} provided)", call.args.size()));
      }
      if (name == "delete") analyse_delete(call);
      return Type::void_type();
    }
    if (contains(kKernelFunctions, name)) {
      error(
          call.location,
          fmt::format(
              "kernel-only feature '{}' is not available in user space (dprobe has no kernel side)",
              name));
    } else if (contains(kLaterFunctions, name)) {
      error(call.location, fmt::format("function '{}' is not supported yet", name));
    } else {
      error(call.location, fmt::format("unknown function '{}'", name));
    }
    for (ast::ExprPtr& arg : call.args)
      analyse_expr(*arg);
    return Type::none();
  }

  /// ustack(N), ustack(MODE), ustack(MODE, N): MODE is bpftrace or perf, N frames (1..127).
  Type analyse_ustack(ast::Call& call) {
    const auto fail_args = [&] {
      for (ast::ExprPtr& arg : call.args) {
        if (arg->kind != ast::ExprKind::Builtin) analyse_expr(*arg);
      }
      return Type::none();
    };
    if (call.args.size() > 2) {
      error(call.location,
            fmt::format("ustack() takes at most 2 arguments ({} provided)", call.args.size()));
      return fail_args();
    }
    bool perf = false;
    int64_t frames = bytecode::kMaxStackFrames;
    size_t next = 0;
    if (call.args.size() == 2 && call.args[0]->kind != ast::ExprKind::Builtin) {
      // bpftrace's words.
      error(call.args[0]->location, fmt::format("ustack() expects a stack mode literal ({} "
                                                "provided)",
                                                literal(*call.args[0]) ? "integer" : "expression"));
      return fail_args();
    }
    if (!call.args.empty() && call.args[0]->kind == ast::ExprKind::Builtin) {
      const std::string& mode = static_cast<const ast::Builtin&>(*call.args[0]).name;
      if (mode != "perf" && mode != "bpftrace") {
        error(call.args[0]->location,
              fmt::format("ustack: unknown stack mode '{}' (expected bpftrace or perf)", mode));
        return Type::none();
      }
      perf = mode == "perf";
      next = 1;
    }
    if (next < call.args.size()) {
      ast::Expr& limit = *call.args[next];
      const std::optional<int64_t> value = literal(limit);
      if (!value) {
        error(limit.location, call.args.size() == 2 && next == 0
                                  ? "ustack: the first argument must be the stack mode "
                                    "(bpftrace or perf)"
                                  : "ustack: the number of frames must be an integer literal");
        return fail_args();
      }
      if (*value < 1 || *value > static_cast<int64_t>(bytecode::kMaxStackFrames)) {
        error(limit.location, fmt::format("ustack: the number of frames must be between 1 and "
                                          "{} ({} given)",
                                          bytecode::kMaxStackFrames, *value));
        return Type::none();
      }
      limit.type = Type::integer(true);
      frames = *value;
    } else if (call.args.size() == 2) {
      error(call.args[1]->location, "ustack: the second argument must be the number of frames");
      return Type::none();
    }
    note_stack_use();
    return Type::stack(perf, static_cast<uint8_t>(frames));
  }

  /// A return probe's stack starts at the caller (as bpftrace's does, taken after the return):
  /// a block with both kinds of attach points gets one program per point.
  void note_stack_use() {
    const auto& points = current_probe_->attach_points;
    const bool any_return = std::any_of(points.begin(), points.end(),
                                        [](const AttachPoint& ap) { return ap.is_return; });
    const bool all_return = std::all_of(points.begin(), points.end(),
                                        [](const AttachPoint& ap) { return ap.is_return; });
    if (any_return && !all_return) reads_probe_name_ = true;
  }

  Type analyse_str(ast::Call& call) {
    if (call.args.empty() || call.args.size() > 2) {
      // bpftrace's words for either case.
      error(call.location,
            call.args.empty()
                ? std::string("str() requires at least 1 argument (0 provided)")
                : fmt::format("str() takes up to 2 arguments ({} provided)", call.args.size()));
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      return Type::none();
    }
    bool ok = true;
    const Type pointer = analyse_expr(*call.args[0]);
    if (!pointer.is_none() && !pointer.is_scalar()) {
      error(call.args[0]->location,
            fmt::format("str() expects an integer address as its first argument, not '{}'",
                        pointer.name()));
      ok = false;
    }
    if (call.args.size() == 2) {
      const Type length = analyse_expr(*call.args[1]);
      if (!length.is_none() && !length.is_scalar()) {
        error(call.args[1]->location,
              fmt::format("str() expects an integer length, not '{}'", length.name()));
        ok = false;
      }
    }
    return ok ? Type::string() : Type::none();
  }

  void analyse_printf(ast::Call& call) {
    const std::string& fn = call.name;
    if (call.args.empty()) {
      error(call.location, fmt::format("{}() requires a format string", fn));
      return;
    }
    if (call.args[0]->kind != ast::ExprKind::String) {
      analyse_expr(*call.args[0]);
      error(call.args[0]->location,
            fmt::format("{}() expects a string literal as its first argument", fn));
      return;
    }
    call.args[0]->type = Type::string();
    bool known = true;
    for (size_t i = 1; i < call.args.size(); ++i) {
      const Type t = analyse_expr(*call.args[i]);
      // Buffers, timestamps and stacks exist to be printed.
      if (t.kind == TypeKind::Buffer || t.kind == TypeKind::Timestamp ||
          t.kind == TypeKind::Stack) {
        continue;
      }
      if (!storable(*call.args[i], t)) known = false;
    }
    const auto& format = static_cast<const ast::String&>(*call.args[0]).value;
    const output::ParsedFormat parsed = output::parse_printf_format(format);
    const size_t supplied = call.args.size() - 1;
    const size_t expected = parsed.segments.size();
    if (supplied > kMaxPrintfArgs) {
      error(call.location,
            fmt::format("printf: too many arguments ({}, at most {})", supplied, kMaxPrintfArgs));
      return;
    }
    if (supplied < expected) {
      error(call.location, fmt::format("printf: not enough arguments for format string ({} "
                                       "supplied, {} expected)",
                                       supplied, expected));
      return;
    }
    if (supplied > expected) {
      error(call.location, fmt::format("printf: too many arguments for format string ({} "
                                       "supplied, {} expected)",
                                       supplied, expected));
      return;
    }
    if (!known) return;
    for (size_t i = 0; i < expected; ++i) {
      const output::Conversion& conversion = parsed.segments[i].conversion;
      const ast::Expr& arg = *call.args[i + 1];
      const bool wants_string = conversion.argument_class() == output::ArgumentClass::String;
      const bool is_buffer = arg.type.kind == TypeKind::Buffer;
      const bool is_stringish = arg.type.is_string() || arg.type.kind == TypeKind::Timestamp ||
                                arg.type.kind == TypeKind::Stack;
      if (conversion.argument_class() == output::ArgumentClass::Buffer) {
        if (!is_buffer) {
          error(arg.location, fmt::format("printf: %r specifier expects a value of type buffer "
                                          "({} supplied)",
                                          printf_type_name(arg.type)));
        }
      } else if (is_buffer) {
        error(arg.location, fmt::format("printf: %{} specifier expects a value of type {} "
                                        "(buffer supplied; use %r)",
                                        conversion.token(), wants_string ? "string" : "integer"));
      } else if (wants_string != is_stringish) {
        error(arg.location, fmt::format("printf: %{} specifier expects a value of type {} ({} "
                                        "supplied)",
                                        conversion.token(), wants_string ? "string" : "integer",
                                        printf_type_name(arg.type)));
      }
    }
  }

  /// print(@m), clear(@m), zero(@m): one whole map.
  /// print(@m) and print(@m, top[, div]): a whole map, not a value.
  static bool prints_whole_map(const ast::Call& call) {
    return !call.args.empty() && call.args.size() <= 3 &&
           call.args[0]->kind == ast::ExprKind::Map &&
           static_cast<const ast::Map&>(*call.args[0]).keys.empty();
  }

  void analyse_map_command(ast::Call& call) {
    if (call.name == "print" && prints_whole_map(call) && call.args.size() > 1) {
      // print(@m, top[, div]): integer literals, as bpftrace takes them.
      for (size_t i = 1; i < call.args.size(); ++i) {
        const std::optional<int64_t> value = literal(*call.args[i]);
        if (call.args[i]->kind != ast::ExprKind::Integer || !value || *value > INT32_MAX) {
          if (!value) analyse_expr(*call.args[i]);
          error(call.args[i]->location,
                fmt::format("print()'s {} must be a non-negative integer literal",
                            i == 1 ? "top" : "div"));
          return;
        }
        call.args[i]->type = Type::integer(true);
      }
    } else if (call.args.size() != 1 || call.args[0]->kind != ast::ExprKind::Map ||
        !static_cast<ast::Map&>(*call.args[0]).keys.empty()) {
      error(call.location,
            fmt::format("{}() takes one whole map, e.g. {}(@m)", call.name, call.name));
      for (ast::ExprPtr& arg : call.args) {
        if (arg->kind != ast::ExprKind::Map) analyse_expr(*arg);
      }
      return;
    }
    auto& map = static_cast<ast::Map&>(*call.args[0]);
    map.map_id = map_id(map);
    map.type = Type::void_type();
  }

  void analyse_delete(ast::Call& call) {
    if (call.args.size() != 1 || call.args[0]->kind != ast::ExprKind::Map) {
      error(call.location, "delete() takes one map element, e.g. delete(@m[key])");
      for (ast::ExprPtr& arg : call.args)
        analyse_expr(*arg);
      return;
    }
    auto& map = static_cast<ast::Map&>(*call.args[0]);
    analyse_map_keys(map);
    map.type = Type::void_type();
  }

  Type analyse_unary(ast::Unary& u) {
    const Type t = analyse_expr(*u.operand);
    if (t.is_none()) return t;
    if (!t.is_scalar()) {
      error(u.location, fmt::format("the '{}' operator cannot be used on a value of type '{}'",
                                    ast::spelling(u.op), t.name()));
      return Type::none();
    }
    // As bpftrace 0.17: '-' and '~' keep the operand's signedness, '!' gives uint64.
    if (u.op == ast::UnaryOp::LNot || t.is_pointer()) return Type::integer(false);
    return Type::integer(t.is_signed); // promoted to 64 bits
  }

  Type analyse_binary(ast::Binary& b) {
    const Type l = analyse_expr(*b.lhs);
    const Type r = analyse_expr(*b.rhs);
    if (quiet_ && l.is_none() != r.is_none()) {
      // While map types are still being discovered, let the known side decide, so that a map
      // defined in terms of itself ("@sum[k] = @sum[k] + v") gets a type. The reporting pass
      // sees every map typed and checks the real thing.
      const Type& known = l.is_none() ? r : l;
      if (known.is_scalar()) return known;
    }
    if (l.is_none() || r.is_none()) return Type::none();
    const bool equality = b.op == ast::BinaryOp::Eq || b.op == ast::BinaryOp::Ne;
    if (equality && l.is_string() && r.is_string()) return Type::integer(true);
    if (!l.is_scalar() || !r.is_scalar()) {
      error(b.location, fmt::format("type mismatch for '{}': '{}' and '{}'", ast::spelling(b.op),
                                    l.name(), r.name()));
      return Type::none();
    }
    // Pointer arithmetic as in C (and bpftrace): p + n and p - n step by the target's size.
    const bool additive = b.op == ast::BinaryOp::Add || b.op == ast::BinaryOp::Sub;
    if (additive && l.is_pointer() && r.is_int()) return l;
    if (b.op == ast::BinaryOp::Add && l.is_int() && r.is_pointer()) return r;
    if (l.is_pointer() || r.is_pointer()) return Type::integer(false);
    // bpftrace 0.17: the result (arithmetic, comparison or logical) is signed only when both
    // operands are.
    return Type::integer(l.is_signed && r.is_signed);
  }

  Type analyse_ternary(ast::Ternary& t) {
    const Type c = analyse_expr(*t.cond);
    const Type a = analyse_expr(*t.then_expr);
    const Type b = analyse_expr(*t.else_expr);
    if (!c.is_none() && !c.is_scalar()) {
      error(t.cond->location, fmt::format("condition must be an integer, not '{}'", c.name()));
      return Type::none();
    }
    if (quiet_ && a.is_none() != b.is_none()) return a.is_none() ? b : a;
    if (a.is_none() || b.is_none()) return Type::none();
    if ((!a.is_scalar() && !a.is_string()) || !a.same_kind(b)) {
      error(t.location, fmt::format("ternary branches must have the same type: '{}' and '{}'",
                                    a.name(), b.name()));
      return Type::none();
    }
    return a; // bpftrace 0.17 takes the first branch's type (and signedness)
  }

  ast::Program& program_;
  Diagnostics& diagnostics_;
  const AnalyserOptions& options_;
  const ast::Probe* current_probe_ = nullptr;
  int loop_depth_ = 0;
  bool reads_probe_name_ = false;
  std::vector<bool> probe_names_attach_point_;
  bool quiet_ = true;
  bool changed_ = false;
  std::vector<MapState> maps_;
  std::map<std::string, int> map_ids_;
  std::map<std::string, SourceLocation> map_first_use_;
  std::map<std::string, Type> variables_;
  std::vector<std::map<std::string, Type>> probe_variables_;
  bool in_special_probe_ = false;
  std::string special_probe_name_;
};

} // namespace

SemanticResult analyse(ast::Program& program, Diagnostics& diagnostics,
                       const AnalyserOptions& options) {
  return Analyser(program, diagnostics, options).run();
}

} // namespace dprobe::lang
