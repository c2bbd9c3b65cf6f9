#include "bytecode/verifier.h"

#include <fmt/format.h>

namespace dprobe::bytecode {

namespace {

Status verify_tables(const Module& module) {
  for (size_t i = 0; i < module.maps.size(); ++i) {
    const MapSchema& map = module.maps[i];
    if (map.name.empty() || map.name[0] != '@') return fail("map {}: bad name '{}'", i, map.name);
    if (map.key_size() > kMaxFrameSize) return fail("map {} ({}): key too large", i, map.name);
    if (map.max_entries == 0) return fail("map {} ({}): no capacity", i, map.name);
  }
  for (size_t i = 0; i < module.formats.size(); ++i) {
    if (module.formats[i].args_size() > kMaxFrameSize) {
      return fail("printf format {}: arguments too large", i);
    }
  }
  for (size_t i = 0; i < module.strings.size(); ++i) {
    if (module.strings[i].size() > kMaxStringLength) {
      return fail("string constant {}: longer than {} bytes", i, kMaxStringLength);
    }
  }
  return {};
}

/// Map updates must suit the map's value kind (count maps only ever add).
bool update_suits_map(const Insn& insn, const Module& module) {
  if (insn.op != Op::MapUpdate) return true;
  const MapSchema& map = module.maps[insn.aux];
  const auto op = static_cast<UpdateOp>(insn.b);
  switch (map.value) {
  case MapValueKind::Count:
    return op == UpdateOp::Add;
  case MapValueKind::Int:
    return op == UpdateOp::Set || op == UpdateOp::Add;
  case MapValueKind::String:
    return false; // set through MapSet events only
  }
  return false;
}

} // namespace

Status verify(const Module& module) {
  if (auto tables = verify_tables(module); !tables) return tables;
  const VmModuleTables tables(module);
  for (uint32_t p = 0; p < module.programs.size(); ++p) {
    const Program& program = module.programs[p];
    if (program.code.size() > kMaxProgramLength) {
      return fail("program {} ({}): {} instructions, more than {}", p, program.name,
                  program.code.size(), kMaxProgramLength);
    }
    if (program.frame_size > kMaxFrameSize) {
      return fail("program {} ({}): frame of {} bytes, more than {}", p, program.name,
                  program.frame_size, kMaxFrameSize);
    }
    const VmProgram view = tables.program(p);
    for (uint32_t pc = 0; pc < program.code.size(); ++pc) {
      const Insn& insn = program.code[pc];
      const VmStatus status = vm_check_insn(insn, pc, view, tables.view());
      if (status != VmStatus::Ok) {
        return fail("program {} ({}): instruction {} ({}): {}", p, program.name, pc,
                    op_name(insn.op), vm_status_name(status));
      }
      if (!update_suits_map(insn, module)) {
        return fail("program {} ({}): instruction {} ({}): update op {} does not suit map {}", p,
                    program.name, pc, op_name(insn.op), insn.b, module.maps[insn.aux].name);
      }
    }
  }
  return {};
}

} // namespace dprobe::bytecode
