// The dprobe instruction set. One fixed 16-byte instruction format, 64 registers of 64 bits,
// and a per-run byte "frame" for scratch variables, strings, map keys and printf arguments.
// Freestanding: this header is compiled into the in-target agent (no libc, no std::).
//
// Every jump goes forward except Loop, the one backward jump (a `while`'s back edge). A program
// without Loop runs at most N steps for N instructions; with Loop, termination is the VM's step
// budget (kStepLimit per run): a runaway loop stops the run with VmStatus::StepLimit, counted as a
// VM error, as the kernel verifier bounds a bpftrace loop.
#pragma once

#include <stdint.h>

namespace dprobe::bytecode {

inline constexpr uint32_t kNumRegisters = 64;
inline constexpr uint32_t kMaxFrameSize = 8192;
inline constexpr uint32_t kMaxProgramLength = 1u << 16;
inline constexpr uint32_t kStepLimit = 1u << 17;
/// str() reads stop at page boundaries between host reads, so that a string ending just before
/// an unmapped page reads fine (bpf_probe_read_user_str does the same).
inline constexpr uint64_t kPageSize = 4096;
/// ustack(N): N is 1..kMaxStackFrames (abi::kMaxStackFrames, bpftrace's limit).
inline constexpr uint32_t kMaxStackFrames = 127;

// Operand conventions (see Insn): dst/a/b are register numbers unless noted; `aux` is a small
// index (map, format, string, context field, frame offset); `imm` is a 64-bit immediate, a jump
// target (absolute instruction index, always > pc), or a frame range packed as off | len << 32.
#define DPROBE_BYTECODE_OPS(X)                                                                     \
  X(Nop, "nop")     /* nothing */                                                                  \
  X(Ret, "ret")     /* stop the program */                                                         \
  X(Exit, "exit")   /* ask the host to end tracing, then stop */                                   \
  X(LoadImm, "ldi") /* dst = imm */                                                                \
  X(Mov, "mov")     /* dst = a */                                                                  \
  X(Add, "add")     /* dst = a + b (wrapping) */                                                   \
  X(Sub, "sub")     /* dst = a - b */                                                              \
  X(Mul, "mul")     /* dst = a * b */                                                              \
  X(UDiv, "udiv")   /* dst = b ? a / b : 0 (unsigned, BPF semantics) */                            \
  X(UMod, "umod")   /* dst = b ? a % b : a (unsigned, BPF semantics) */                            \
  X(SDiv, "sdiv")   /* signed; b == 0 -> 0, INT64_MIN / -1 -> INT64_MIN */                         \
  X(SMod, "smod")   /* signed; b == 0 -> a, INT64_MIN % -1 -> 0 */                                 \
  X(And, "and")     /* dst = a & b */                                                              \
  X(Or, "or")       /* dst = a | b */                                                              \
  X(Xor, "xor")     /* dst = a ^ b */                                                              \
  X(Shl, "shl")     /* dst = a << (b & 63) */                                                      \
  X(LShr, "lshr")   /* dst = a >> (b & 63), logical */                                             \
  X(AShr, "ashr")   /* dst = a >> (b & 63), arithmetic */                                          \
  X(Eq, "eq")       /* dst = a == b */                                                             \
  X(Ne, "ne")       /* dst = a != b */                                                             \
  X(ULt, "ult")     /* dst = a < b, unsigned */                                                    \
  X(ULe, "ule")                                                                                    \
  X(UGt, "ugt")                                                                                    \
  X(UGe, "uge")                                                                                    \
  X(SLt, "slt") /* dst = a < b, signed */                                                          \
  X(SLe, "sle")                                                                                    \
  X(SGt, "sgt")                                                                                    \
  X(SGe, "sge")                                                                                    \
  X(Neg, "neg")                /* dst = -a */                                                      \
  X(Not, "not")                /* dst = ~a */                                                      \
  X(LNot, "lnot")              /* dst = a == 0 */                                                  \
  X(LoadCtx, "ldctx")          /* dst = context field aux (CtxField) */                            \
  X(Load64, "ld64")            /* dst = frame[imm .. imm+8) little-endian */                       \
  X(Store64, "st64")           /* frame[imm .. imm+8) = a */                                       \
  X(LoadString, "ldstr")       /* frame string field at imm = constant string aux */               \
  X(LoadCtxString, "ldctxstr") /* frame string field at imm = context string aux */                \
  X(ReadString, "rdstr")       /* frame string field at imm = target string at a, <= b chars       \
                                  (clamped to 63); empty when any read faults */                   \
  X(Copy, "copy")              /* frame[off .. off+len) = frame[aux .. aux+len), imm=off|len */    \
  X(StrEq, "streq")            /* dst = string fields at aux and imm are equal */                  \
  X(Jump, "jmp")               /* pc = imm */                                                      \
  X(JumpIfZero, "jz")          /* if a == 0: pc = imm */                                           \
  X(JumpIfNotZero, "jnz")      /* if a != 0: pc = imm */                                           \
  X(MapLookup, "mapld")        /* dst = map aux [key at frame imm] or 0 when absent */             \
  X(MapUpdate, "mapupd")       /* map aux [key at frame imm] <op b (UpdateOp)> a */                \
  X(MapDelete, "mapdel")       /* remove map aux [key at frame imm] */                             \
  X(HistIndex, "histidx")      /* dst = hist() bucket of a (bytecode/aggregate.h hist_bucket) */   \
  X(MapCommand, "mapcmd")      /* host: print/clear/zero map aux (b is a MapCommandKind) */        \
  X(Printf, "printf")          /* emit format aux with packed args frame[imm] (off|len<<32) */     \
  X(Loop, "loop")              /* pc = imm, backward (imm <= pc): a while loop's back edge */      \
  X(Extend, "ext")             /* dst = a truncated to aux bytes (1 2 4 8), sign-extended          \
                                  when imm != 0 (casts, narrow values) */                          \
  X(ReadInt, "rdint")          /* dst = aux bytes (1 2 4 8) of target memory at a, sign-           \
                                  extended when imm != 0; 0 when any byte is unreadable */         \
  X(ReadBuf, "rdbuf")          /* frame buffer field at imm = b bytes (clamped to                  \
                                  kMaxBufferLength) of target memory at a; zeros on a fault */    \
  X(UStack, "ustack")          /* dst = id of the hit's user stack, at most aux frames (1..127,   \
                                  abi/unwind.h), after skipping imm (0 or 1) innermost frames;    \
                                  0 when there is no user stack (BEGIN, END) */

enum class Op : uint8_t {
#define DPROBE_OP_ENUM(name, text) name,
  DPROBE_BYTECODE_OPS(DPROBE_OP_ENUM)
#undef DPROBE_OP_ENUM
      kCount
};

/// One instruction. Plain data so that it can be copied into the target's shared memory.
struct Insn {
  Op op;
  uint8_t dst;
  uint8_t a;
  uint8_t b;
  uint32_t aux;
  uint64_t imm;
};
static_assert(sizeof(Insn) == 16, "instructions are 16 bytes");

/// Context fields readable with LoadCtx (integers).
enum class CtxField : uint32_t {
  Arg0,
  Arg1,
  Arg2,
  Arg3,
  Arg4,
  Arg5,
  Pid,
  Tid,
  Nsecs,
  Retval,
  Uid,
  Gid,
  Cpu,
  Elapsed,  ///< nanoseconds since tracing started
  Cpid,     ///< pid of the command dprobe launched (-c)
  RegFirst, ///< RegFirst + CtxReg: a named register at the hit
  kCount = RegFirst + 18
};

/// Registers a probe can read with reg("name"), at the probed instruction.
enum class CtxReg : uint32_t {
  R15,
  R14,
  R13,
  R12,
  Rbp,
  Rbx,
  R11,
  R10,
  R9,
  R8,
  Rax,
  Rcx,
  Rdx,
  Rsi,
  Rdi,
  Rip,
  Rflags,
  Rsp,
  kCount
};
static_assert(static_cast<uint32_t>(CtxField::kCount) ==
                  static_cast<uint32_t>(CtxField::RegFirst) + static_cast<uint32_t>(CtxReg::kCount),
              "one context field per register");

inline constexpr CtxField reg_field(CtxReg reg) {
  return static_cast<CtxField>(static_cast<uint32_t>(CtxField::RegFirst) +
                               static_cast<uint32_t>(reg));
}

/// Context strings readable with LoadCtxString.
enum class CtxString : uint32_t { Comm, kCount };

/// How MapUpdate combines the new value v with the stored value (bytecode/aggregate.h has the
/// value layouts and applies them):
///   Set     word 0 = v                       plain assignment
///   Add     word 0 += v                      count(), sum()
///   Max     word 0 = max(word 0, v), signed  max(); min() updates with 0xffffffff - x
///   Avg     word 0 += 1, word 1 += v         avg(), stats()
///   Bucket  word v += 1                      hist(), lhist(): v is the bucket (HistIndex)
enum class UpdateOp : uint8_t { Set = 0, Add = 1, Max = 2, Avg = 3, Bucket = 4, kCount };

/// MapCommand's command (in `b`): whole-map operations the host performs. A Print's `imm` is 0,
/// or 1 + the index of its print(@m, top, div) limits in the module (bytecode::Module).
enum class MapCommandKind : uint8_t { Print = 0, Clear = 1, Zero = 2, kCount };

/// The command word VmHost::map_command gets (and the agent's ring carries): the kind in the low
/// 8 bits, the Print limits' index + 1 above (0: none).
inline constexpr uint32_t kMaxPrintLimits = (1u << 24) - 1;
inline constexpr uint32_t map_command_word(uint32_t kind, uint64_t limits) {
  return kind | (static_cast<uint32_t>(limits) << 8);
}
inline constexpr uint32_t map_command_kind(uint32_t word) {
  return word & 0xffu;
}
inline constexpr uint32_t map_command_limits(uint32_t word) {
  return word >> 8;
}

/// A frame range packed in imm: offset in the low 32 bits, length in the high 32 bits.
inline constexpr uint64_t frame_range(uint32_t offset, uint32_t length) {
  return static_cast<uint64_t>(offset) | (static_cast<uint64_t>(length) << 32);
}
inline constexpr uint32_t range_offset(uint64_t imm) {
  return static_cast<uint32_t>(imm);
}
inline constexpr uint32_t range_length(uint64_t imm) {
  return static_cast<uint32_t>(imm >> 32);
}

/// Mnemonic of an opcode, "?" when out of range.
const char* op_name(Op op);

} // namespace dprobe::bytecode
