// Freestanding: this file is also compiled with -ffreestanding -nostdlib (dprobe_vm_freestanding),
// so it uses no library function, not even memcpy/memset: plain byte loops only.
#include "bytecode/vm.h"

#include "bytecode/aggregate.h"

namespace dprobe::bytecode {

namespace {

constexpr uint32_t kNone = 0;
constexpr uint32_t kDst = 1;
constexpr uint32_t kA = 2;
constexpr uint32_t kB = 4;

/// Which of dst/a/b an opcode reads as registers.
uint32_t register_operands(Op op) {
  switch (op) {
  case Op::Nop:
  case Op::Ret:
  case Op::Exit:
  case Op::LoadString:
  case Op::LoadCtxString:
  case Op::Copy:
  case Op::Jump:
  case Op::MapDelete:
  case Op::Printf:
  case Op::MapCommand:
  case Op::Loop:
    return kNone;
  case Op::LoadImm:
  case Op::LoadCtx:
  case Op::UStack:
  case Op::Load64:
  case Op::MapLookup:
  case Op::StrEq:
    return kDst;
  case Op::Extend:
  case Op::ReadInt:
  case Op::Mov:
  case Op::Neg:
  case Op::Not:
  case Op::LNot:
  case Op::HistIndex:
    return kDst | kA;
  case Op::Store64:
  case Op::JumpIfZero:
  case Op::JumpIfNotZero:
  case Op::MapUpdate:
    return kA;
  case Op::ReadString:
  case Op::ReadBuf:
    return kA | kB;
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
  case Op::UDiv:
  case Op::UMod:
  case Op::SDiv:
  case Op::SMod:
  case Op::And:
  case Op::Or:
  case Op::Xor:
  case Op::Shl:
  case Op::LShr:
  case Op::AShr:
  case Op::Eq:
  case Op::Ne:
  case Op::ULt:
  case Op::ULe:
  case Op::UGt:
  case Op::UGe:
  case Op::SLt:
  case Op::SLe:
  case Op::SGt:
  case Op::SGe:
    return kDst | kA | kB;
  case Op::kCount:
    break;
  }
  return kNone;
}

/// [offset, offset + length) lies inside the program's frame (no overflow: 64-bit sums of
/// 32-bit-bounded values are checked against a frame of at most kMaxFrameSize).
bool frame_range_ok(uint64_t offset, uint64_t length, const VmProgram& program) {
  if (offset > kMaxFrameSize || length > kMaxFrameSize) return false;
  return offset + length <= program.frame_size;
}

bool map_ok(uint32_t id, const VmModule& module) {
  return module.maps != nullptr && id < module.map_count;
}

void zero_bytes(uint8_t* dst, uint64_t length) {
  for (uint64_t i = 0; i < length; ++i)
    dst[i] = 0;
}

void move_bytes(uint8_t* dst, const uint8_t* src, uint64_t length) {
  if (dst < src) {
    for (uint64_t i = 0; i < length; ++i)
      dst[i] = src[i];
  } else {
    for (uint64_t i = length; i > 0; --i)
      dst[i - 1] = src[i - 1];
  }
}

/// Fills a string field from bytes that may lack a NUL; stops at the first NUL.
void store_string_field(uint8_t* field, const char* data, uint64_t length) {
  zero_bytes(field, kStringFieldSize);
  if (data == nullptr) return;
  if (length > kMaxStringLength) length = kMaxStringLength;
  for (uint64_t i = 0; i < length && data[i] != 0; ++i)
    field[i] = static_cast<uint8_t>(data[i]);
}

/// str(): reads at most max_chars bytes in page-bounded chunks; any failed read empties the
/// string, as bpf_probe_read_user_str does.
void read_target_string(uint8_t* field, uint64_t address, uint64_t max_chars, const VmHost& host) {
  zero_bytes(field, kStringFieldSize);
  if (max_chars > kMaxStringLength) max_chars = kMaxStringLength;
  uint64_t done = 0;
  while (done < max_chars) {
    const uint64_t current = address + done;
    if (current < address || host.read_memory == nullptr) {
      zero_bytes(field, kStringFieldSize);
      return;
    }
    uint64_t chunk = kPageSize - (current % kPageSize);
    if (chunk > max_chars - done) chunk = max_chars - done;
    if (!host.read_memory(host.ctx, current, field + done, chunk)) {
      zero_bytes(field, kStringFieldSize);
      return;
    }
    for (uint64_t i = done; i < done + chunk; ++i) {
      if (field[i] == 0) {
        zero_bytes(field + i, kStringFieldSize - i);
        return;
      }
    }
    done += chunk;
  }
}

bool strings_equal(const uint8_t* x, const uint8_t* y) {
  for (uint32_t i = 0; i < kStringFieldSize; ++i) {
    if (x[i] != y[i]) return false;
    if (x[i] == 0) return true;
  }
  return true;
}

/// Truncates to `size` bytes (1, 2, 4 or 8), then sign- or zero-extends back to 64 bits.
uint64_t extend(uint64_t value, uint32_t size, bool is_signed) {
  if (size >= 8) return value;
  const uint32_t bits = size * 8;
  const uint64_t mask = (1ull << bits) - 1;
  value &= mask;
  if (is_signed && (value >> (bits - 1)) != 0) value |= ~mask;
  return value;
}

bool int_size_ok(uint32_t size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

/// *(T*)address: a fault reads as 0, as bpf_probe_read_user leaves its buffer zeroed.
uint64_t read_target_int(uint64_t address, uint32_t size, bool is_signed, const VmHost& host) {
  uint8_t bytes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (host.read_memory == nullptr || !host.read_memory(host.ctx, address, bytes, size)) return 0;
  return extend(load_u64_le(bytes), size, is_signed);
}

/// buf(p, n): the length, then the bytes; zeros when any read faults (the length stays).
void read_target_buffer(uint8_t* field, uint64_t address, uint64_t length, const VmHost& host) {
  zero_bytes(field, kBufferFieldSize);
  if (length > kMaxBufferLength) length = kMaxBufferLength;
  store_u64_le(field, length);
  uint64_t done = 0;
  while (done < length) {
    const uint64_t current = address + done;
    uint64_t chunk = kPageSize - (current % kPageSize);
    if (chunk > length - done) chunk = length - done;
    if (current < address || host.read_memory == nullptr ||
        !host.read_memory(host.ctx, current, field + 8 + done, chunk)) {
      zero_bytes(field + 8, kMaxBufferLength);
      return;
    }
    done += chunk;
  }
}

uint64_t context_field(const VmContext& context, CtxField field) {
  const auto index = static_cast<uint32_t>(field);
  if (index >= static_cast<uint32_t>(CtxField::RegFirst) &&
      index < static_cast<uint32_t>(CtxField::kCount)) {
    return context.regs[index - static_cast<uint32_t>(CtxField::RegFirst)];
  }
  switch (field) {
  case CtxField::Arg0:
  case CtxField::Arg1:
  case CtxField::Arg2:
  case CtxField::Arg3:
  case CtxField::Arg4:
  case CtxField::Arg5:
    return context.args[static_cast<uint32_t>(field) - static_cast<uint32_t>(CtxField::Arg0)];
  case CtxField::Retval:
    return context.retval;
  case CtxField::Pid:
    return context.pid;
  case CtxField::Tid:
    return context.tid;
  case CtxField::Nsecs:
    return context.nsecs;
  case CtxField::Uid:
    return context.uid;
  case CtxField::Gid:
    return context.gid;
  case CtxField::Cpu:
    return context.cpu;
  case CtxField::Elapsed:
    return context.elapsed;
  case CtxField::Cpid:
    return context.cpid;
  case CtxField::RegFirst:
  case CtxField::kCount:
    break;
  }
  return 0;
}

constexpr uint64_t kInt64Min = 1ull << 63;

uint64_t signed_div(uint64_t a, uint64_t b) {
  if (b == 0) return 0;
  if (a == kInt64Min && b == ~0ull) return kInt64Min;
  return static_cast<uint64_t>(static_cast<int64_t>(a) / static_cast<int64_t>(b));
}

uint64_t signed_mod(uint64_t a, uint64_t b) {
  if (b == 0) return a;
  if (a == kInt64Min && b == ~0ull) return 0;
  return static_cast<uint64_t>(static_cast<int64_t>(a) % static_cast<int64_t>(b));
}

} // namespace

const char* op_name(Op op) {
  switch (op) {
#define DPROBE_OP_NAME(name, text)                                                                 \
  case Op::name:                                                                                   \
    return text;
    DPROBE_BYTECODE_OPS(DPROBE_OP_NAME)
#undef DPROBE_OP_NAME
  case Op::kCount:
    break;
  }
  return "?";
}

const char* vm_status_name(VmStatus status) {
  switch (status) {
  case VmStatus::Ok:
    return "ok";
  case VmStatus::Exited:
    return "exited";
  case VmStatus::BadOpcode:
    return "bad opcode";
  case VmStatus::BadRegister:
    return "bad register";
  case VmStatus::BadFrameAccess:
    return "frame access out of bounds";
  case VmStatus::BadMap:
    return "bad map id";
  case VmStatus::BadFormat:
    return "bad format id or argument size";
  case VmStatus::BadString:
    return "bad string id";
  case VmStatus::BadContextField:
    return "bad context field";
  case VmStatus::BadUpdateOp:
    return "bad map update op";
  case VmStatus::BadJump:
    return "jump not forward within the program";
  case VmStatus::BadProgram:
    return "bad program header";
  case VmStatus::StepLimit:
    return "step limit reached (a loop ran too long)";
  }
  return "?";
}

VmStatus vm_check_insn(const Insn& insn, uint32_t pc, const VmProgram& program,
                       const VmModule& module) {
  if (static_cast<uint32_t>(insn.op) >= static_cast<uint32_t>(Op::kCount))
    return VmStatus::BadOpcode;
  const uint32_t regs = register_operands(insn.op);
  if (((regs & kDst) && insn.dst >= kNumRegisters) || ((regs & kA) && insn.a >= kNumRegisters) ||
      ((regs & kB) && insn.b >= kNumRegisters)) {
    return VmStatus::BadRegister;
  }
  switch (insn.op) {
  case Op::LoadCtx:
    if (insn.aux >= static_cast<uint32_t>(CtxField::kCount)) return VmStatus::BadContextField;
    break;
  case Op::Load64:
  case Op::Store64:
    if (!frame_range_ok(insn.imm, kIntFieldSize, program)) return VmStatus::BadFrameAccess;
    break;
  case Op::LoadString:
    if (module.strings == nullptr || insn.aux >= module.string_count) return VmStatus::BadString;
    if (!frame_range_ok(insn.imm, kStringFieldSize, program)) return VmStatus::BadFrameAccess;
    break;
  case Op::LoadCtxString:
    if (insn.aux >= static_cast<uint32_t>(CtxString::kCount)) return VmStatus::BadContextField;
    if (!frame_range_ok(insn.imm, kStringFieldSize, program)) return VmStatus::BadFrameAccess;
    break;
  case Op::ReadString:
    if (!frame_range_ok(insn.imm, kStringFieldSize, program)) return VmStatus::BadFrameAccess;
    break;
  case Op::ReadBuf:
    if (!frame_range_ok(insn.imm, kBufferFieldSize, program)) return VmStatus::BadFrameAccess;
    break;
  case Op::Extend:
  case Op::ReadInt:
    if (!int_size_ok(insn.aux)) return VmStatus::BadOpcode;
    break;
  case Op::UStack:
    if (insn.aux == 0 || insn.aux > kMaxStackFrames || insn.imm > 1) return VmStatus::BadOpcode;
    break;
  case Op::Loop:
    if (insn.imm > pc) return VmStatus::BadJump;
    break;
  case Op::Copy:
    if (!frame_range_ok(range_offset(insn.imm), range_length(insn.imm), program) ||
        !frame_range_ok(insn.aux, range_length(insn.imm), program)) {
      return VmStatus::BadFrameAccess;
    }
    break;
  case Op::StrEq:
    if (!frame_range_ok(insn.aux, kStringFieldSize, program) ||
        !frame_range_ok(insn.imm, kStringFieldSize, program)) {
      return VmStatus::BadFrameAccess;
    }
    break;
  case Op::Jump:
  case Op::JumpIfZero:
  case Op::JumpIfNotZero:
    if (insn.imm <= pc || insn.imm > program.length) return VmStatus::BadJump;
    break;
  case Op::MapLookup:
  case Op::MapUpdate:
  case Op::MapDelete:
    if (!map_ok(insn.aux, module)) return VmStatus::BadMap;
    if (insn.op == Op::MapUpdate && insn.b >= static_cast<uint32_t>(UpdateOp::kCount)) {
      return VmStatus::BadUpdateOp;
    }
    if (!frame_range_ok(insn.imm, module.maps[insn.aux].key_size, program)) {
      return VmStatus::BadFrameAccess;
    }
    break;
  case Op::MapCommand:
    if (!map_ok(insn.aux, module)) return VmStatus::BadMap;
    if (insn.b >= static_cast<uint32_t>(MapCommandKind::kCount) || insn.imm > kMaxPrintLimits ||
        (insn.imm != 0 && insn.b != static_cast<uint8_t>(MapCommandKind::Print))) {
      return VmStatus::BadUpdateOp;
    }
    break;
  case Op::Printf:
    if (module.formats == nullptr || insn.aux >= module.format_count ||
        module.formats[insn.aux].args_size != range_length(insn.imm)) {
      return VmStatus::BadFormat;
    }
    if (!frame_range_ok(range_offset(insn.imm), range_length(insn.imm), program)) {
      return VmStatus::BadFrameAccess;
    }
    break;
  default:
    break;
  }
  return VmStatus::Ok;
}

VmStatus vm_run(const VmProgram& program, const VmModule& module, const VmContext& context,
                const VmHost& host, VmState& state) {
  if ((program.code == nullptr && program.length != 0) || program.length > kMaxProgramLength ||
      program.frame_size > kMaxFrameSize) {
    return VmStatus::BadProgram;
  }
  for (uint32_t i = 0; i < kNumRegisters; ++i)
    state.regs[i] = 0;
  zero_bytes(state.frame, program.frame_size);

  uint64_t* const r = state.regs;
  uint8_t* const frame = state.frame;
  uint32_t pc = 0;
  uint32_t steps = 0;
  while (pc < program.length) {
    if (++steps > kStepLimit) return VmStatus::StepLimit;
    const Insn insn = program.code[pc];
    // Re-checked on every step: the code may sit in memory the target can write.
    const VmStatus check = vm_check_insn(insn, pc, program, module);
    if (check != VmStatus::Ok) return check;
    uint32_t next = pc + 1;
    const uint64_t a = r[insn.a % kNumRegisters];
    const uint64_t b = r[insn.b % kNumRegisters];
    uint64_t& dst = r[insn.dst % kNumRegisters];
    switch (insn.op) {
    case Op::Nop:
      break;
    case Op::Ret:
      return VmStatus::Ok;
    case Op::Exit:
      if (host.request_exit != nullptr) host.request_exit(host.ctx);
      return VmStatus::Exited;
    case Op::LoadImm:
      dst = insn.imm;
      break;
    case Op::Mov:
      dst = a;
      break;
    case Op::Add:
      dst = a + b;
      break;
    case Op::Sub:
      dst = a - b;
      break;
    case Op::Mul:
      dst = a * b;
      break;
    case Op::UDiv:
      dst = b == 0 ? 0 : a / b;
      break;
    case Op::UMod:
      dst = b == 0 ? a : a % b;
      break;
    case Op::SDiv:
      dst = signed_div(a, b);
      break;
    case Op::SMod:
      dst = signed_mod(a, b);
      break;
    case Op::And:
      dst = a & b;
      break;
    case Op::Or:
      dst = a | b;
      break;
    case Op::Xor:
      dst = a ^ b;
      break;
    case Op::Shl:
      dst = a << (b & 63);
      break;
    case Op::LShr:
      dst = a >> (b & 63);
      break;
    case Op::AShr: {
      const uint64_t shift = b & 63;
      const uint64_t fill = (a & kInt64Min) != 0 && shift != 0 ? ~(~0ull >> shift) : 0;
      dst = (a >> shift) | fill;
      break;
    }
    case Op::Eq:
      dst = a == b;
      break;
    case Op::Ne:
      dst = a != b;
      break;
    case Op::ULt:
      dst = a < b;
      break;
    case Op::ULe:
      dst = a <= b;
      break;
    case Op::UGt:
      dst = a > b;
      break;
    case Op::UGe:
      dst = a >= b;
      break;
    case Op::SLt:
      dst = static_cast<int64_t>(a) < static_cast<int64_t>(b);
      break;
    case Op::SLe:
      dst = static_cast<int64_t>(a) <= static_cast<int64_t>(b);
      break;
    case Op::SGt:
      dst = static_cast<int64_t>(a) > static_cast<int64_t>(b);
      break;
    case Op::SGe:
      dst = static_cast<int64_t>(a) >= static_cast<int64_t>(b);
      break;
    case Op::Neg:
      dst = 0 - a;
      break;
    case Op::Not:
      dst = ~a;
      break;
    case Op::LNot:
      dst = a == 0;
      break;
    case Op::LoadCtx:
      dst = context_field(context, static_cast<CtxField>(insn.aux));
      break;
    case Op::Load64:
      dst = load_u64_le(frame + insn.imm);
      break;
    case Op::Store64:
      store_u64_le(frame + insn.imm, a);
      break;
    case Op::LoadString: {
      const VmString& s = module.strings[insn.aux];
      store_string_field(frame + insn.imm, s.data, s.length);
      break;
    }
    case Op::LoadCtxString:
      store_string_field(frame + insn.imm, context.comm, sizeof(context.comm));
      break;
    case Op::ReadString:
      read_target_string(frame + insn.imm, a, b, host);
      break;
    case Op::Copy:
      move_bytes(frame + range_offset(insn.imm), frame + insn.aux, range_length(insn.imm));
      break;
    case Op::StrEq:
      dst = strings_equal(frame + insn.aux, frame + insn.imm);
      break;
    case Op::Jump:
      next = static_cast<uint32_t>(insn.imm);
      break;
    case Op::JumpIfZero:
      if (a == 0) next = static_cast<uint32_t>(insn.imm);
      break;
    case Op::JumpIfNotZero:
      if (a != 0) next = static_cast<uint32_t>(insn.imm);
      break;
    case Op::MapLookup: {
      uint64_t value = 0;
      if (host.map_lookup == nullptr || !host.map_lookup(host.ctx, insn.aux, frame + insn.imm,
                                                         module.maps[insn.aux].key_size, &value)) {
        value = 0;
      }
      dst = value;
      break;
    }
    case Op::MapUpdate:
      // A full map drops the update, as a BPF map does; the program goes on.
      if (host.map_update != nullptr) {
        (void)host.map_update(host.ctx, insn.aux, frame + insn.imm, module.maps[insn.aux].key_size,
                              insn.b, a);
      }
      break;
    case Op::MapDelete:
      if (host.map_delete != nullptr) {
        host.map_delete(host.ctx, insn.aux, frame + insn.imm, module.maps[insn.aux].key_size);
      }
      break;
    case Op::HistIndex:
      dst = hist_bucket(a);
      break;
    case Op::MapCommand:
      if (host.map_command != nullptr) {
        host.map_command(host.ctx, insn.aux, map_command_word(insn.b, insn.imm));
      }
      break;
    case Op::Printf:
      if (host.emit_printf != nullptr) {
        host.emit_printf(host.ctx, insn.aux, frame + range_offset(insn.imm),
                         range_length(insn.imm));
      }
      break;
    case Op::Loop:
      next = static_cast<uint32_t>(insn.imm);
      break;
    case Op::Extend:
      dst = extend(a, insn.aux, insn.imm != 0);
      break;
    case Op::ReadInt:
      dst = read_target_int(a, insn.aux, insn.imm != 0, host);
      break;
    case Op::ReadBuf:
      read_target_buffer(frame + insn.imm, a, b, host);
      break;
    case Op::UStack:
      dst = host.stack_id != nullptr
                ? host.stack_id(host.ctx, insn.aux, static_cast<uint32_t>(insn.imm))
                : 0;
      break;
    case Op::kCount:
      return VmStatus::BadOpcode;
    }
    pc = next;
  }
  return VmStatus::Ok;
}

} // namespace dprobe::bytecode
