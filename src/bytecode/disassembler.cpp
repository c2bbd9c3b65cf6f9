#include "bytecode/disassembler.h"

#include <fmt/format.h>

namespace dprobe::bytecode {

namespace {

std::string map_name(uint32_t id, const Module* module) {
  if (module != nullptr && id < module->maps.size()) return module->maps[id].name;
  return fmt::format("map#{}", id);
}

const char* update_op_name(uint8_t op) {
  switch (static_cast<UpdateOp>(op)) {
  case UpdateOp::Set:
    return "set";
  case UpdateOp::Add:
    return "add";
  case UpdateOp::Max:
    return "max";
  case UpdateOp::Avg:
    return "avg";
  case UpdateOp::Bucket:
    return "bucket";
  case UpdateOp::kCount:
    break;
  }
  return "?";
}

const char* ctx_field_name(uint32_t field) {
  static constexpr const char* kNames[] = {
      "arg0",    "arg1",    "arg2",   "arg3",   "arg4",    "arg5",    "pid",       "tid",
      "nsecs",   "retval",  "uid",    "gid",    "cpu",     "elapsed", "cpid",      "reg:r15",   "reg:r14",
      "reg:r13", "reg:r12", "reg:bp", "reg:bx", "reg:r11", "reg:r10", "reg:r9",    "reg:r8",
      "reg:ax",  "reg:cx",  "reg:dx", "reg:si", "reg:di",  "reg:ip",  "reg:flags", "reg:sp"};
  static_assert(std::size(kNames) == static_cast<size_t>(CtxField::kCount));
  return field < std::size(kNames) ? kNames[field] : "?";
}

} // namespace

std::string disassemble(const Insn& insn, const Module* module) {
  const char* name = op_name(insn.op);
  switch (insn.op) {
  case Op::Nop:
  case Op::Ret:
  case Op::Exit:
    return name;
  case Op::LoadImm:
    return fmt::format("{} r{}, {}", name, insn.dst, static_cast<int64_t>(insn.imm));
  case Op::Mov:
  case Op::Neg:
  case Op::Not:
  case Op::LNot:
  case Op::HistIndex:
    return fmt::format("{} r{}, r{}", name, insn.dst, insn.a);
  case Op::LoadCtx:
    return fmt::format("{} r{}, {}", name, insn.dst, ctx_field_name(insn.aux));
  case Op::Load64:
    return fmt::format("{} r{}, [fp+{}]", name, insn.dst, insn.imm);
  case Op::Store64:
    return fmt::format("{} [fp+{}], r{}", name, insn.imm, insn.a);
  case Op::LoadString:
    return fmt::format("{} [fp+{}], str#{}", name, insn.imm, insn.aux);
  case Op::LoadCtxString:
    return fmt::format("{} [fp+{}], comm", name, insn.imm);
  case Op::ReadString:
    return fmt::format("{} [fp+{}], r{}, max r{}", name, insn.imm, insn.a, insn.b);
  case Op::Copy:
    return fmt::format("{} [fp+{}], [fp+{}], {}", name, range_offset(insn.imm), insn.aux,
                       range_length(insn.imm));
  case Op::StrEq:
    return fmt::format("{} r{}, [fp+{}], [fp+{}]", name, insn.dst, insn.aux, insn.imm);
  case Op::Jump:
    return fmt::format("{} {}", name, insn.imm);
  case Op::JumpIfZero:
  case Op::JumpIfNotZero:
    return fmt::format("{} r{}, {}", name, insn.a, insn.imm);
  case Op::MapLookup:
    return fmt::format("{} r{}, {}[fp+{}]", name, insn.dst, map_name(insn.aux, module), insn.imm);
  case Op::MapUpdate:
    return fmt::format("{} {}[fp+{}] {} r{}", name, map_name(insn.aux, module), insn.imm,
                       update_op_name(insn.b), insn.a);
  case Op::MapDelete:
    return fmt::format("{} {}[fp+{}]", name, map_name(insn.aux, module), insn.imm);
  case Op::MapCommand: {
    static constexpr const char* kCommands[] = {"print", "clear", "zero"};
    return fmt::format("{} {} {}", name, insn.b < std::size(kCommands) ? kCommands[insn.b] : "?",
                       map_name(insn.aux, module));
  }
  case Op::Printf:
    return fmt::format("{} fmt#{}, [fp+{}], {}", name, insn.aux, range_offset(insn.imm),
                       range_length(insn.imm));
  case Op::Loop:
    return fmt::format("{} {}", name, insn.imm);
  case Op::Extend:
  case Op::ReadInt:
    return fmt::format("{} r{}, r{}, {}{}", name, insn.dst, insn.a, insn.imm != 0 ? "s" : "u",
                       insn.aux * 8);
  case Op::ReadBuf:
    return fmt::format("{} [fp+{}], r{}, len r{}", name, insn.imm, insn.a, insn.b);
  case Op::UStack:
    return fmt::format("{} r{}, {} frames{}", name, insn.dst, insn.aux,
                       insn.imm != 0 ? ", from the caller" : "");
  case Op::kCount:
    break;
  default:
    return fmt::format("{} r{}, r{}, r{}", name, insn.dst, insn.a, insn.b);
  }
  return fmt::format("?{}", static_cast<unsigned>(insn.op));
}

std::string disassemble(const Program& program, const Module* module) {
  std::string out = fmt::format("{} (frame {} bytes):\n", program.name, program.frame_size);
  for (size_t pc = 0; pc < program.code.size(); ++pc) {
    out += fmt::format("{:4}: {}\n", pc, disassemble(program.code[pc], module));
  }
  return out;
}

} // namespace dprobe::bytecode
