// Register and frame use are stack-shaped: an expression's value lives in the lowest free
// register, strings in 64-byte frame fields; both are released when the statement ends.
// Scratch variables get fixed frame slots below the temporaries.
#include "lang/passes/codegen.h"

#include <map>
#include <optional>

#include <fmt/format.h>

namespace dprobe::lang {

namespace {

using bytecode::FieldKind;
using bytecode::Insn;
using bytecode::Op;

class ProgramBuilder {
 public:
  ProgramBuilder(bytecode::Module& module, std::map<std::string, uint32_t>& string_ids,
                 Diagnostics& diagnostics)
      : module_(module), string_ids_(string_ids), diagnostics_(diagnostics) {}

  /// The program of `probe`; `point` >= 0 builds the one of that attach point alone (its name,
  /// and its `probe`/`func` constants).
  bytecode::Program build(const ast::Probe& probe, const std::map<std::string, Type>& variables,
                          int point) {
    probe_ = &probe;
    point_ = &probe.attach_points.at(point < 0 ? 0 : static_cast<size_t>(point));
    for (const auto& [name, type] : variables) {
      if (type.is_scalar()) variable_slots_[name] = allocate_frame(bytecode::kIntFieldSize);
      if (type.is_string()) variable_slots_[name] = allocate_frame(bytecode::kStringFieldSize);
    }
    temp_base_ = frame_top_;
    std::vector<size_t> to_end;
    if (probe.predicate) {
      const uint8_t cond = gen_int(*probe.predicate);
      to_end.push_back(emit_jump(Op::JumpIfZero, cond));
      release_temporaries();
    }
    gen_block(probe.body);
    for (size_t jump : to_end)
      patch(jump);
    emit(Insn{Op::Ret, 0, 0, 0, 0, 0});

    bytecode::Program program;
    for (const AttachPoint& ap : probe.attach_points) {
      if (point >= 0 && &ap != point_) continue;
      if (!program.name.empty()) program.name += ",";
      program.name += ap.raw;
    }
    program.code = std::move(code_);
    program.frame_size = frame_max_;
    if (frame_max_ > bytecode::kMaxFrameSize && !reported_) {
      diagnostics_.error(probe.location,
                         fmt::format("probe needs {} bytes of scratch memory, more than {}",
                                     frame_max_, bytecode::kMaxFrameSize));
    }
    return program;
  }

 private:
  // --- emission -------------------------------------------------------------------------------

  size_t emit(Insn insn) {
    code_.push_back(insn);
    return code_.size() - 1;
  }

  size_t emit_jump(Op op, uint8_t reg = 0) { return emit(Insn{op, 0, reg, 0, 0, 0}); }

  /// Points a forward jump at the next instruction to be emitted.
  void patch(size_t jump) { code_[jump].imm = code_.size(); }

  // --- resources ------------------------------------------------------------------------------

  uint8_t allocate_register(const ast::Expr& e) {
    if (next_register_ >= bytecode::kNumRegisters) {
      if (!reported_) {
        diagnostics_.error(e.location, "expression too complex (out of registers)");
        reported_ = true;
      }
      return bytecode::kNumRegisters - 1;
    }
    return static_cast<uint8_t>(next_register_++);
  }

  uint32_t allocate_frame(uint32_t size) {
    const uint32_t offset = frame_top_;
    frame_top_ += size;
    frame_max_ = std::max(frame_max_, frame_top_);
    return offset;
  }

  void release_temporaries() {
    next_register_ = 0;
    frame_top_ = temp_base_;
  }

  // --- statements -----------------------------------------------------------------------------

  void gen_block(const std::vector<ast::StmtPtr>& body) {
    for (const ast::StmtPtr& stmt : body) {
      gen_stmt(*stmt);
      release_temporaries();
    }
  }

  void gen_stmt(const ast::Stmt& stmt) {
    switch (stmt.kind) {
    case ast::StmtKind::Expr:
      gen_expr_stmt(*static_cast<const ast::ExprStmt&>(stmt).expr);
      break;
    case ast::StmtKind::AssignMap: {
      const auto& s = static_cast<const ast::AssignMap&>(stmt);
      if (is_string_map(*s.map)) {
        gen_string_map_event(*s.map, bytecode::EventKind::MapSet, s.value.get());
        break;
      }
      const uint32_t key = gen_key(*s.map);
      if (s.value->type.kind == TypeKind::Count) {
        gen_aggregation(*s.map, key, static_cast<const ast::Call&>(*s.value));
      } else {
        const uint8_t value = gen_int(*s.value);
        emit(Insn{Op::MapUpdate, 0, value, static_cast<uint8_t>(bytecode::UpdateOp::Set),
                  map_id(*s.map), key});
      }
      break;
    }
    case ast::StmtKind::AssignVar: {
      const auto& s = static_cast<const ast::AssignVar&>(stmt);
      const uint32_t slot = variable_slots_.at(s.var->name);
      if (s.var->type.is_string()) {
        gen_string_into(*s.value, slot);
      } else {
        const uint8_t value = gen_int(*s.value);
        emit(Insn{Op::Store64, 0, value, 0, 0, slot});
      }
      break;
    }
    case ast::StmtKind::While: {
      const auto& s = static_cast<const ast::While&>(stmt);
      const size_t start = code_.size();
      const uint8_t cond = gen_int(*s.cond);
      const size_t to_end = emit_jump(Op::JumpIfZero, cond);
      release_temporaries();
      loops_.push_back(LoopLabels{start, {}});
      gen_block(s.body);
      // The back edge: the only backward jump; the VM's step budget bounds the loop.
      emit(Insn{Op::Loop, 0, 0, 0, 0, start});
      patch(to_end);
      for (size_t jump : loops_.back().breaks)
        patch(jump);
      loops_.pop_back();
      break;
    }
    case ast::StmtKind::Unroll: {
      const auto& s = static_cast<const ast::Unroll&>(stmt);
      for (uint64_t i = 0; i < s.count; ++i)
        gen_block(s.body);
      break;
    }
    case ast::StmtKind::Break:
      if (!loops_.empty()) loops_.back().breaks.push_back(emit_jump(Op::Jump));
      break;
    case ast::StmtKind::Continue:
      if (!loops_.empty()) emit(Insn{Op::Loop, 0, 0, 0, 0, loops_.back().start});
      break;
    case ast::StmtKind::If: {
      const auto& s = static_cast<const ast::If&>(stmt);
      const uint8_t cond = gen_int(*s.cond);
      const size_t to_else = emit_jump(Op::JumpIfZero, cond);
      release_temporaries();
      gen_block(s.then_body);
      if (s.else_body.empty()) {
        patch(to_else);
      } else {
        const size_t to_end = emit_jump(Op::Jump);
        patch(to_else);
        gen_block(s.else_body);
        patch(to_end);
      }
      break;
    }
    }
  }

  /// `@m[key] = count() / sum(x) / ... / lhist(x, min, max, step)`: the map update that
  /// aggregation makes (UpdateOp in isa.h, value layouts in bytecode/aggregate.h).
  void gen_aggregation(const ast::Map& map, uint32_t key, const ast::Call& call) {
    using bytecode::UpdateOp;
    const auto update = [&](uint8_t value, UpdateOp op) {
      emit(Insn{Op::MapUpdate, 0, value, static_cast<uint8_t>(op), map_id(map), key});
    };
    if (call.name == "count") {
      const uint8_t one = allocate_register(call);
      emit(Insn{Op::LoadImm, one, 0, 0, 0, 1});
      update(one, UpdateOp::Add);
      return;
    }
    const uint8_t value = gen_int(*call.args[0]);
    if (call.name == "sum") {
      update(value, UpdateOp::Add);
    } else if (call.name == "max") {
      update(value, UpdateOp::Max);
    } else if (call.name == "min") {
      // bpftrace keeps 0xffffffff - x under a max (aggregate.h).
      const uint8_t inverse = allocate_register(call);
      emit(Insn{Op::LoadImm, inverse, 0, 0, 0, bytecode::kMinInverseBase});
      emit(Insn{Op::Sub, inverse, inverse, value, 0, 0});
      update(inverse, UpdateOp::Max);
    } else if (call.name == "avg" || call.name == "stats") {
      update(value, UpdateOp::Avg);
    } else if (call.name == "hist") {
      emit(Insn{Op::HistIndex, value, value, 0, 0, 0});
      update(value, UpdateOp::Bucket);
    } else if (call.name == "lhist") {
      const bytecode::MapSchema& schema = module_.maps.at(map_id(map));
      update(gen_lhist_bucket(call, value, schema), UpdateOp::Bucket);
    }
  }

  /// bytecode::lhist_bucket in instructions: 0 below min, the last bucket above max, else
  /// 1 + (x - min) / step. Leaves the bucket in `value`.
  uint8_t gen_lhist_bucket(const ast::Call& call, uint8_t value, const bytecode::MapSchema& map) {
    const auto min = static_cast<uint64_t>(map.lhist_min);
    const auto max = static_cast<uint64_t>(map.lhist_max);
    const auto step = static_cast<uint64_t>(map.lhist_step);
    const uint8_t t = allocate_register(call);
    emit(Insn{Op::LoadImm, t, 0, 0, 0, min});
    emit(Insn{Op::SLt, t, value, t, 0, 0});
    const size_t not_below = emit_jump(Op::JumpIfZero, t);
    emit(Insn{Op::LoadImm, value, 0, 0, 0, 0});
    const size_t below_done = emit_jump(Op::Jump);
    patch(not_below);
    emit(Insn{Op::LoadImm, t, 0, 0, 0, max});
    emit(Insn{Op::SGt, t, value, t, 0, 0});
    const size_t not_above = emit_jump(Op::JumpIfZero, t);
    emit(Insn{Op::LoadImm, value, 0, 0, 0, 1 + (max - min) / (step == 0 ? 1 : step)});
    const size_t above_done = emit_jump(Op::Jump);
    patch(not_above);
    emit(Insn{Op::LoadImm, t, 0, 0, 0, min});
    emit(Insn{Op::Sub, value, value, t, 0, 0});
    emit(Insn{Op::LoadImm, t, 0, 0, 0, step});
    emit(Insn{Op::UDiv, value, value, t, 0, 0});
    emit(Insn{Op::LoadImm, t, 0, 0, 0, 1});
    emit(Insn{Op::Add, value, value, t, 0, 0});
    patch(below_done);
    patch(above_done);
    return value;
  }

  void gen_expr_stmt(const ast::Expr& e) {
    if (e.kind != ast::ExprKind::Call) {
      // A bare expression has no effect, but evaluating it keeps str() reads etc. honest.
      gen_value(e);
      return;
    }
    const auto& call = static_cast<const ast::Call&>(e);
    if (call.name == "exit") {
      emit(Insn{Op::Exit, 0, 0, 0, 0, 0});
    } else if (call.name == "printf") {
      gen_printf(call, bytecode::EventKind::Printf);
    } else if (call.name == "system") {
      gen_printf(call, bytecode::EventKind::System);
    } else if (call.name == "time") {
      bytecode::PrintfFormat format;
      format.kind = bytecode::EventKind::Time;
      format.format =
          call.args.empty() ? "%H:%M:%S\n" : static_cast<const ast::String&>(*call.args[0]).value;
      emit_event(std::move(format), {});
    } else if (call.name == "print" && !(call.args[0]->kind == ast::ExprKind::Map &&
                                         static_cast<const ast::Map&>(*call.args[0]).keys.empty())) {
      // print(value): the value and a newline, as bpftrace prints a non-map value.
      const ast::Expr& value = *call.args[0];
      bytecode::PrintfFormat format;
      format.kind = bytecode::EventKind::Value;
      if (value.type.kind == TypeKind::Timestamp) {
        // strftime(FMT, ns) travels as its nanoseconds and prints as its date (gen_printf).
        format.format = "%s\n";
        format.args.push_back(FieldKind::Int);
        format.strftime_formats.push_back(
            static_cast<const ast::String&>(*static_cast<const ast::Call&>(value).args[0]).value);
      } else {
        format.format = value.type.is_string() || value.type.kind == TypeKind::Stack ? "%s\n"
                        : value.type.kind == TypeKind::Buffer ? "%r\n"
                        : value.type.is_signed                 ? "%ld\n"
                                                               : "%lu\n";
        format.args.push_back(field_kind(value.type));
      }
      emit_event(std::move(format), {&value});
    } else if (call.name == "delete" &&
               is_string_map(static_cast<const ast::Map&>(*call.args[0]))) {
      gen_string_map_event(static_cast<const ast::Map&>(*call.args[0]),
                           bytecode::EventKind::MapDelete, nullptr);
    } else if (call.name == "delete") {
      const auto& map = static_cast<const ast::Map&>(*call.args[0]);
      const uint32_t key = gen_key(map);
      emit(Insn{Op::MapDelete, 0, 0, 0, map_id(map), key});
    } else if (call.name == "print" || call.name == "clear" || call.name == "zero") {
      const auto command = call.name == "print"   ? bytecode::MapCommandKind::Print
                           : call.name == "clear" ? bytecode::MapCommandKind::Clear
                                                  : bytecode::MapCommandKind::Zero;
      const auto& map = static_cast<const ast::Map&>(*call.args[0]);
      uint64_t limits = 0; // print(@m, top, div): 1 + the index of its limits
      if (call.args.size() > 1) {
        bytecode::PrintLimits l;
        l.top = static_cast<uint32_t>(static_cast<const ast::Integer&>(*call.args[1]).value);
        if (call.args.size() > 2) {
          l.div = static_cast<uint32_t>(static_cast<const ast::Integer&>(*call.args[2]).value);
        }
        module_.print_limits.push_back(l);
        limits = module_.print_limits.size();
      }
      emit(Insn{Op::MapCommand, 0, 0, static_cast<uint8_t>(command), map_id(map), limits});
    } else {
      gen_value(e);
    }
  }

  static FieldKind field_kind(const Type& type) {
    if (type.is_string()) return FieldKind::String;
    if (type.kind == TypeKind::Buffer) return FieldKind::Buffer;
    if (type.kind == TypeKind::Stack) return type.stack_perf ? FieldKind::UStackPerf : FieldKind::UStack;
    return FieldKind::Int;
  }

  void gen_printf(const ast::Call& call, bytecode::EventKind kind) {
    bytecode::PrintfFormat format;
    format.kind = kind;
    format.format = static_cast<const ast::String&>(*call.args[0]).value;
    std::vector<const ast::Expr*> values;
    bool timestamps = false;
    for (size_t i = 1; i < call.args.size(); ++i) {
      const ast::Expr& arg = *call.args[i];
      format.args.push_back(field_kind(arg.type));
      values.push_back(&arg);
      timestamps |= arg.type.kind == TypeKind::Timestamp;
    }
    if (timestamps) {
      for (const ast::Expr* arg : values) {
        format.strftime_formats.push_back(
            arg->type.kind == TypeKind::Timestamp
                ? static_cast<const ast::String&>(*static_cast<const ast::Call&>(*arg).args[0])
                      .value
                : std::string());
      }
    }
    emit_event(std::move(format), values);
  }

  bool is_string_map(const ast::Map& map) const {
    return module_.maps.at(map_id(map)).value == bytecode::MapValueKind::String;
  }

  /// A string map's values live in the controller: an assignment or delete is an event carrying
  /// the key (and the value), applied in ring order.
  void gen_string_map_event(const ast::Map& map, bytecode::EventKind kind, const ast::Expr* value) {
    bytecode::PrintfFormat format;
    format.kind = kind;
    format.map = map_id(map);
    std::vector<const ast::Expr*> fields;
    for (const ast::ExprPtr& key : map.keys) {
      format.args.push_back(field_kind(key->type));
      fields.push_back(key.get());
    }
    if (value != nullptr) {
      format.args.push_back(FieldKind::String);
      fields.push_back(value);
    }
    emit_event(std::move(format), fields);
  }

  /// Packs `values` into a fresh frame range and emits the event of `format`.
  void emit_event(bytecode::PrintfFormat format, const std::vector<const ast::Expr*>& values) {
    const uint32_t size = format.args_size();
    const uint32_t args = allocate_frame(size);
    uint32_t offset = args;
    for (const ast::Expr* value : values)
      offset += gen_field_into(*value, offset);
    const auto id = static_cast<uint32_t>(module_.formats.size());
    module_.formats.push_back(std::move(format));
    emit(Insn{Op::Printf, 0, 0, 0, id, bytecode::frame_range(args, size)});
  }

  // --- packed records -------------------------------------------------------------------------

  static uint32_t map_id(const ast::Map& map) { return static_cast<uint32_t>(map.map_id); }

  /// Writes one packed field (int or string) at `offset`; returns its size.
  uint32_t gen_field_into(const ast::Expr& e, uint32_t offset) {
    if (e.type.is_string()) {
      gen_string_into(e, offset);
      return bytecode::kStringFieldSize;
    }
    if (e.type.kind == TypeKind::Buffer) { // buf(address, length)
      const auto& call = static_cast<const ast::Call&>(e);
      const uint8_t address = gen_int(*call.args[0]);
      const uint8_t length = gen_int(*call.args[1]);
      emit(Insn{Op::ReadBuf, 0, address, length, 0, offset});
      next_register_ = address;
      return bytecode::kBufferFieldSize;
    }
    const uint8_t value = gen_int(e);
    emit(Insn{Op::Store64, 0, value, 0, 0, offset});
    next_register_ = value; // the value is stored; its register is free again
    return bytecode::kIntFieldSize;
  }

  /// Packs a map access's key into a fresh frame range; returns its offset.
  uint32_t gen_key(const ast::Map& map) {
    uint32_t size = 0;
    for (const ast::ExprPtr& key : map.keys) {
      size += key->type.is_string() ? bytecode::kStringFieldSize : bytecode::kIntFieldSize;
    }
    const uint32_t key = allocate_frame(size);
    uint32_t offset = key;
    for (const ast::ExprPtr& k : map.keys)
      offset += gen_field_into(*k, offset);
    return key;
  }

  // --- expressions ----------------------------------------------------------------------------

  void gen_value(const ast::Expr& e) {
    if (e.type.is_string()) {
      gen_string(e);
    } else if (e.type.is_scalar() || e.type.kind == TypeKind::Stack) {
      gen_int(e);
    }
  }

  /// Evaluates an integer expression into a newly allocated register.
  uint8_t gen_int(const ast::Expr& e) {
    if (e.type.kind == TypeKind::Stack &&
        (e.kind == ast::ExprKind::Builtin || e.kind == ast::ExprKind::Call)) {
      const uint8_t r = allocate_register(e);
      // A return probe fires at the exit instruction: its first frame, the callee's, is dropped
      // so that the stack starts at the caller, as after the return (bpftrace's).
      const bool at_return = point_ != nullptr && point_->is_return;
      emit(Insn{Op::UStack, r, 0, 0, e.type.stack_frames, at_return ? 1u : 0u});
      return r;
    }
    switch (e.kind) {
    case ast::ExprKind::Integer: {
      const uint8_t r = allocate_register(e);
      emit(Insn{Op::LoadImm, r, 0, 0, 0, static_cast<const ast::Integer&>(e).value});
      return r;
    }
    case ast::ExprKind::Builtin: {
      const std::string& name = static_cast<const ast::Builtin&>(e).name;
      if (std::optional<uint32_t> slot = stack_slot(name)) return gen_stack_argument(e, *slot);
      const uint8_t r = allocate_register(e);
      emit(Insn{Op::LoadCtx, r, 0, 0, static_cast<uint32_t>(context_field(name)), 0});
      return r;
    }
    case ast::ExprKind::Cast: {
      const auto& c = static_cast<const ast::Cast&>(e);
      const uint8_t r = gen_int(*c.operand);
      if (!c.to_pointer && c.target.size < 8) {
        emit(Insn{Op::Extend, r, r, 0, c.target.size, c.target.is_signed ? 1u : 0u});
      }
      return r;
    }
    case ast::ExprKind::Deref: {
      const auto& d = static_cast<const ast::Deref&>(e);
      const uint8_t r = gen_int(*d.operand);
      emit(Insn{Op::ReadInt, r, r, 0, e.type.size, e.type.is_signed ? 1u : 0u});
      return r;
    }
    case ast::ExprKind::Variable: {
      const uint8_t r = allocate_register(e);
      const uint32_t slot = variable_slots_.at(static_cast<const ast::Variable&>(e).name);
      emit(Insn{Op::Load64, r, 0, 0, 0, slot});
      return r;
    }
    case ast::ExprKind::Map: {
      const auto& map = static_cast<const ast::Map&>(e);
      const uint32_t key = gen_key(map);
      const uint8_t r = allocate_register(e);
      emit(Insn{Op::MapLookup, r, 0, 0, map_id(map), key});
      if (module_.maps.at(map_id(map)).value == bytecode::MapValueKind::Min) {
        // The stored word is 0xffffffff - min; a stored 0 (missing, or zeroed) reads as 0, as
        // the printer shows it: r = (0xffffffff - r) * (r != 0).
        const uint8_t inverse = allocate_register(e);
        const uint8_t nonzero = allocate_register(e);
        emit(Insn{Op::LoadImm, inverse, 0, 0, 0, bytecode::kMinInverseBase});
        emit(Insn{Op::Sub, inverse, inverse, r, 0, 0});
        emit(Insn{Op::LoadImm, nonzero, 0, 0, 0, 0});
        emit(Insn{Op::Ne, nonzero, r, nonzero, 0, 0});
        emit(Insn{Op::Mul, r, inverse, nonzero, 0, 0});
        next_register_ = r + 1u;
      }
      return r;
    }
    case ast::ExprKind::Unary: {
      const auto& u = static_cast<const ast::Unary&>(e);
      const uint8_t r = gen_int(*u.operand);
      const Op op = u.op == ast::UnaryOp::Neg    ? Op::Neg
                    : u.op == ast::UnaryOp::BNot ? Op::Not
                                                 : Op::LNot;
      emit(Insn{op, r, r, 0, 0, 0});
      return r;
    }
    case ast::ExprKind::Binary:
      return gen_binary(static_cast<const ast::Binary&>(e));
    case ast::ExprKind::Ternary: {
      const auto& t = static_cast<const ast::Ternary&>(e);
      const uint8_t r = gen_int(*t.cond);
      const size_t to_else = emit_jump(Op::JumpIfZero, r);
      const uint8_t a = gen_int(*t.then_expr);
      emit(Insn{Op::Mov, r, a, 0, 0, 0});
      next_register_ = r + 1u;
      const size_t to_end = emit_jump(Op::Jump);
      patch(to_else);
      const uint8_t b = gen_int(*t.else_expr);
      emit(Insn{Op::Mov, r, b, 0, 0, 0});
      next_register_ = r + 1u;
      patch(to_end);
      return r;
    }
    case ast::ExprKind::Call: {
      const auto& call = static_cast<const ast::Call&>(e);
      if (call.name == "reg") {
        const uint8_t r = allocate_register(e);
        const auto reg = register_named(static_cast<const ast::String&>(*call.args[0]).value);
        emit(Insn{Op::LoadCtx, r, 0, 0, static_cast<uint32_t>(bytecode::reg_field(reg)), 0});
        return r;
      }
      if (call.name == "strftime") return gen_int(*call.args[1]); // the ns; printed by the host
      break;
    }
    case ast::ExprKind::String:
      break;
    }
    // Only reachable for an ill-typed tree; produce a harmless zero.
    const uint8_t r = allocate_register(e);
    emit(Insn{Op::LoadImm, r, 0, 0, 0, 0});
    return r;
  }

  uint8_t gen_binary(const ast::Binary& b) {
    using ast::BinaryOp;
    if (b.op == BinaryOp::LAnd || b.op == BinaryOp::LOr) {
      const uint8_t r = gen_int(*b.lhs);
      normalize_bool(r);
      const size_t to_end =
          emit_jump(b.op == BinaryOp::LAnd ? Op::JumpIfZero : Op::JumpIfNotZero, r);
      const uint8_t rhs = gen_int(*b.rhs);
      normalize_bool(rhs);
      emit(Insn{Op::Mov, r, rhs, 0, 0, 0});
      next_register_ = r + 1u;
      patch(to_end);
      return r;
    }
    if (b.lhs->type.is_string()) {
      const uint32_t lhs = gen_string(*b.lhs);
      const uint32_t rhs = gen_string(*b.rhs);
      const uint8_t r = allocate_register(b);
      emit(Insn{Op::StrEq, r, 0, 0, lhs, rhs});
      if (b.op == BinaryOp::Ne) emit(Insn{Op::LNot, r, r, 0, 0, 0});
      return r;
    }
    const uint8_t lhs = gen_int(*b.lhs);
    const uint8_t rhs = gen_int(*b.rhs);
    // Pointer arithmetic: the integer side counts elements of the pointer's target.
    if (b.type.is_pointer() && b.type.size > 1) {
      const uint8_t index = b.lhs->type.is_pointer() ? rhs : lhs;
      const uint8_t scale = allocate_register(b);
      emit(Insn{Op::LoadImm, scale, 0, 0, 0, b.type.size});
      emit(Insn{Op::Mul, index, index, scale, 0, 0});
    }
    // bpftrace 0.17: division, modulo and '>>' are unsigned; comparisons are signed only when
    // both operands are.
    const bool is_signed = b.lhs->type.is_int() && b.rhs->type.is_int() && b.lhs->type.is_signed &&
                           b.rhs->type.is_signed;
    Op op = Op::Add;
    switch (b.op) {
    case BinaryOp::Mul:
      op = Op::Mul;
      break;
    case BinaryOp::Div:
      op = Op::UDiv;
      break;
    case BinaryOp::Mod:
      op = Op::UMod;
      break;
    case BinaryOp::Add:
      op = Op::Add;
      break;
    case BinaryOp::Sub:
      op = Op::Sub;
      break;
    case BinaryOp::Shl:
      op = Op::Shl;
      break;
    case BinaryOp::Shr:
      op = Op::LShr;
      break;
    case BinaryOp::Lt:
      op = is_signed ? Op::SLt : Op::ULt;
      break;
    case BinaryOp::Le:
      op = is_signed ? Op::SLe : Op::ULe;
      break;
    case BinaryOp::Gt:
      op = is_signed ? Op::SGt : Op::UGt;
      break;
    case BinaryOp::Ge:
      op = is_signed ? Op::SGe : Op::UGe;
      break;
    case BinaryOp::Eq:
      op = Op::Eq;
      break;
    case BinaryOp::Ne:
      op = Op::Ne;
      break;
    case BinaryOp::BAnd:
      op = Op::And;
      break;
    case BinaryOp::BXor:
      op = Op::Xor;
      break;
    case BinaryOp::BOr:
      op = Op::Or;
      break;
    case BinaryOp::LAnd:
    case BinaryOp::LOr:
      break;
    }
    emit(Insn{op, lhs, lhs, rhs, 0, 0});
    next_register_ = lhs + 1u;
    return lhs;
  }

  void normalize_bool(uint8_t r) {
    emit(Insn{Op::LNot, r, r, 0, 0, 0});
    emit(Insn{Op::LNot, r, r, 0, 0, 0});
  }

  static bytecode::CtxField context_field(std::string_view name) {
    if (name.size() == 4 && name.substr(0, 3) == "arg") {
      return static_cast<bytecode::CtxField>(static_cast<uint32_t>(bytecode::CtxField::Arg0) +
                                             static_cast<uint32_t>(name[3] - '0'));
    }
    if (name == "pid") return bytecode::CtxField::Pid;
    if (name == "tid") return bytecode::CtxField::Tid;
    if (name == "retval") return bytecode::CtxField::Retval;
    if (name == "uid") return bytecode::CtxField::Uid;
    if (name == "gid") return bytecode::CtxField::Gid;
    if (name == "cpu") return bytecode::CtxField::Cpu;
    if (name == "elapsed") return bytecode::CtxField::Elapsed;
    if (name == "cpid") return bytecode::CtxField::Cpid;
    return bytecode::CtxField::Nsecs;
  }

  /// arg6..arg9 and sargN: the stack slot (0 = the first word above the return address).
  static std::optional<uint32_t> stack_slot(std::string_view name) {
    if (name.size() == 4 && name.substr(0, 3) == "arg" && name[3] >= '6' && name[3] <= '9') {
      return static_cast<uint32_t>(name[3] - '6');
    }
    if (name.size() > 4 && name.substr(0, 4) == "sarg") {
      uint32_t n = 0;
      for (char c : name.substr(4))
        n = n * 10 + static_cast<uint32_t>(c - '0');
      return n;
    }
    return std::nullopt;
  }

  /// At a function's entry the return address is at sp: stack argument n is at sp + 8 (n + 1).
  uint8_t gen_stack_argument(const ast::Expr& e, uint32_t slot) {
    const uint8_t r = allocate_register(e);
    const uint8_t offset = allocate_register(e);
    emit(Insn{Op::LoadCtx, r, 0, 0,
              static_cast<uint32_t>(bytecode::reg_field(bytecode::CtxReg::Rsp)), 0});
    emit(Insn{Op::LoadImm, offset, 0, 0, 0, 8ull * (slot + 1)});
    emit(Insn{Op::Add, r, r, offset, 0, 0});
    emit(Insn{Op::ReadInt, r, r, 0, 8, 0});
    next_register_ = r + 1u;
    return r;
  }

  static bytecode::CtxReg register_named(std::string_view name) {
    static constexpr std::pair<std::string_view, bytecode::CtxReg> kNames[] = {
        {"r15", bytecode::CtxReg::R15},      {"r14", bytecode::CtxReg::R14},
        {"r13", bytecode::CtxReg::R13},      {"r12", bytecode::CtxReg::R12},
        {"bp", bytecode::CtxReg::Rbp},       {"bx", bytecode::CtxReg::Rbx},
        {"r11", bytecode::CtxReg::R11},      {"r10", bytecode::CtxReg::R10},
        {"r9", bytecode::CtxReg::R9},        {"r8", bytecode::CtxReg::R8},
        {"ax", bytecode::CtxReg::Rax},       {"cx", bytecode::CtxReg::Rcx},
        {"dx", bytecode::CtxReg::Rdx},       {"si", bytecode::CtxReg::Rsi},
        {"di", bytecode::CtxReg::Rdi},       {"ip", bytecode::CtxReg::Rip},
        {"flags", bytecode::CtxReg::Rflags}, {"sp", bytecode::CtxReg::Rsp}};
    for (const auto& [n, reg] : kNames) {
      if (n == name) return reg;
    }
    return bytecode::CtxReg::Rsp; // unreachable: the analyser checked the name
  }

  /// `probe` and `func` of the attach point this program is for.
  std::string probe_string(std::string_view name) const {
    const AttachPoint& ap = *point_;
    if (ap.kind == ProbeKind::Begin) return "BEGIN";
    if (ap.kind == ProbeKind::End) return "END";
    if (name == "func") return fit_string_field(ap.symbol);
    std::string text = (ap.is_return ? "uretprobe:" : "uprobe:") + ap.path + ":" + ap.symbol;
    if (ap.offset != 0) text += fmt::format("+{}", ap.offset);
    return fit_string_field(std::move(text));
  }

  /// A string field holds kMaxStringLength bytes. A longer probe name (a long path) keeps its
  /// end, where the names of two probes differ, behind "...": bpftrace prints it whole.
  static std::string fit_string_field(std::string text) {
    if (text.size() <= bytecode::kMaxStringLength) return text;
    return "..." + text.substr(text.size() - (bytecode::kMaxStringLength - 3));
  }

  /// A string expression's frame field: a variable's own slot, else a fresh temporary.
  uint32_t gen_string(const ast::Expr& e) {
    if (e.kind == ast::ExprKind::Variable) {
      return variable_slots_.at(static_cast<const ast::Variable&>(e).name);
    }
    const uint32_t field = allocate_frame(bytecode::kStringFieldSize);
    gen_string_into(e, field);
    return field;
  }

  void load_constant(const std::string& value, uint32_t field) {
    auto [it, inserted] =
        string_ids_.try_emplace(value, static_cast<uint32_t>(module_.strings.size()));
    if (inserted) module_.strings.push_back(value);
    emit(Insn{Op::LoadString, 0, 0, 0, it->second, field});
  }

  void gen_string_into(const ast::Expr& e, uint32_t field) {
    switch (e.kind) {
    case ast::ExprKind::String:
      load_constant(static_cast<const ast::String&>(e).value, field);
      return;
    case ast::ExprKind::Builtin: { // comm, probe, func
      const std::string& name = static_cast<const ast::Builtin&>(e).name;
      if (name == "probe" || name == "func") {
        load_constant(probe_string(name), field);
        return;
      }
      emit(Insn{Op::LoadCtxString, 0, 0, 0, static_cast<uint32_t>(bytecode::CtxString::Comm),
                field});
      return;
    }
    case ast::ExprKind::Variable: {
      const uint32_t slot = variable_slots_.at(static_cast<const ast::Variable&>(e).name);
      if (slot != field) {
        emit(Insn{Op::Copy, 0, 0, 0, slot,
                  bytecode::frame_range(field, bytecode::kStringFieldSize)});
      }
      return;
    }
    case ast::ExprKind::Call: { // str(address[, length])
      const auto& call = static_cast<const ast::Call&>(e);
      const uint8_t address = gen_int(*call.args[0]);
      uint8_t length = 0;
      if (call.args.size() > 1) {
        length = gen_int(*call.args[1]);
      } else {
        length = allocate_register(e);
        emit(Insn{Op::LoadImm, length, 0, 0, 0, bytecode::kMaxStringLength});
      }
      emit(Insn{Op::ReadString, 0, address, length, 0, field});
      next_register_ = address;
      return;
    }
    case ast::ExprKind::Ternary: {
      const auto& t = static_cast<const ast::Ternary&>(e);
      const uint8_t cond = gen_int(*t.cond);
      const size_t to_else = emit_jump(Op::JumpIfZero, cond);
      gen_string_into(*t.then_expr, field);
      const size_t to_end = emit_jump(Op::Jump);
      patch(to_else);
      gen_string_into(*t.else_expr, field);
      patch(to_end);
      next_register_ = cond;
      return;
    }
    default:
      return;
    }
  }

  struct LoopLabels {
    size_t start;               ///< the condition's first instruction (continue, back edge)
    std::vector<size_t> breaks; ///< forward jumps to patch to the loop's end
  };

  bytecode::Module& module_;
  const ast::Probe* probe_ = nullptr;
  const AttachPoint* point_ = nullptr;
  std::vector<LoopLabels> loops_;
  std::map<std::string, uint32_t>& string_ids_;
  Diagnostics& diagnostics_;
  std::vector<Insn> code_;
  std::map<std::string, uint32_t> variable_slots_;
  uint32_t next_register_ = 0;
  uint32_t frame_top_ = 0;
  uint32_t frame_max_ = 0;
  uint32_t temp_base_ = 0;
  bool reported_ = false;
};

} // namespace

bytecode::Module generate(const ast::Program& program, const SemanticResult& semantic,
                          Diagnostics& diagnostics,
                          std::vector<std::vector<uint32_t>>& point_programs) {
  bytecode::Module module;
  module.maps = semantic.maps;
  std::map<std::string, uint32_t> string_ids;
  point_programs.clear();
  for (size_t i = 0; i < program.probes.size(); ++i) {
    const ast::Probe& probe = program.probes[i];
    const bool per_point =
        i < semantic.probe_names_attach_point.size() && semantic.probe_names_attach_point[i];
    std::vector<uint32_t>& points = point_programs.emplace_back();
    if (!per_point) {
      ProgramBuilder builder(module, string_ids, diagnostics);
      module.programs.push_back(builder.build(probe, semantic.probe_variables.at(i), -1));
      points.assign(probe.attach_points.size(), static_cast<uint32_t>(module.programs.size() - 1));
      continue;
    }
    for (size_t k = 0; k < probe.attach_points.size(); ++k) {
      ProgramBuilder builder(module, string_ids, diagnostics);
      module.programs.push_back(
          builder.build(probe, semantic.probe_variables.at(i), static_cast<int>(k)));
      points.push_back(static_cast<uint32_t>(module.programs.size() - 1));
    }
  }
  return module;
}

} // namespace dprobe::lang
