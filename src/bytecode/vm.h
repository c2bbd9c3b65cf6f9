// The probe-program interpreter. The same source runs in the controller (probe hits arrive via
// ptrace) and in the in-target agent, so it is freestanding: no libc, no exceptions, no RTTI, no
// allocation, no floating point. Everything it touches outside its own state goes through
// VmHost, and every index it reads from an instruction is checked before use, even for
// programs the verifier accepted (the agent's copy lives in memory the target can scribble on).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bytecode/isa.h"
#include "bytecode/packed.h"

namespace dprobe::bytecode {

/// A constant string (literals); at most kMaxStringLength bytes are used.
struct VmString {
  const char* data;
  uint32_t length;
};

struct VmMapInfo {
  uint32_t key_size; ///< bytes of a packed key (0 for a map without keys)
};

struct VmFormatInfo {
  uint32_t args_size; ///< bytes of the packed argument record
};

/// Module-wide tables a program refers to by index.
struct VmModule {
  const VmMapInfo* maps;
  uint32_t map_count;
  const VmFormatInfo* formats;
  uint32_t format_count;
  const VmString* strings;
  uint32_t string_count;
};

struct VmProgram {
  const Insn* code;
  uint32_t length;
  uint32_t frame_size; ///< bytes of frame the program uses, <= kMaxFrameSize
};

/// What a probe program can see of the hit.
struct VmContext {
  uint64_t args[6]; ///< rdi rsi rdx rcx r8 r9
  uint64_t retval;
  uint64_t pid;
  uint64_t tid;
  uint64_t nsecs;
  char comm[16]; ///< NUL-terminated
  uint64_t uid;
  uint64_t gid;
  uint64_t cpu;
  uint64_t elapsed;                                     ///< ns since tracing started
  uint64_t cpid;                                        ///< the -c command's pid
  uint64_t regs[static_cast<uint32_t>(CtxReg::kCount)]; ///< indexed by CtxReg
};

/// Caller-owned working memory, so the VM needs no stack beyond a few words and the agent can
/// hand it per-thread (or per nesting level) scratch space.
struct VmState {
  uint64_t regs[kNumRegisters];
  uint8_t frame[kMaxFrameSize];
};

/// The outside world. Every callback may be null, which counts as a failure of that operation.
struct VmHost {
  void* ctx;
  /// Fault-safe read of target memory; false when any byte is unreadable.
  bool (*read_memory)(void* ctx, uint64_t address, void* dst, uint64_t length);
  /// Stores the value for key into *value; false when the key is absent.
  bool (*map_lookup)(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size,
                     uint64_t* value);
  /// Applies `op` (an UpdateOp) with value; false when the map is full (the update is dropped).
  bool (*map_update)(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size, uint32_t op,
                     uint64_t value);
  void (*map_delete)(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size);
  /// A printf event: the format index and its packed arguments (see packed.h).
  void (*emit_printf)(void* ctx, uint32_t format_id, const uint8_t* args, uint32_t size);
  void (*request_exit)(void* ctx);
  /// print(@m), clear(@m), zero(@m): `command` is a map_command_word (isa.h).
  void (*map_command)(void* ctx, uint32_t map_id, uint32_t command);
  /// ustack: walks the hit's user stack (at most max_frames frames after the first `skip`),
  /// records it where dprobe finds it, and returns its id (abi::stack_id); 0 without a user
  /// stack.
  uint64_t (*stack_id)(void* ctx, uint32_t max_frames, uint32_t skip);
};

enum class VmStatus : uint8_t {
  Ok,     ///< ran to the end or a Ret
  Exited, ///< ran an Exit (the host was told)
  BadOpcode,
  BadRegister,
  BadFrameAccess, ///< a frame range outside the program's frame
  BadMap,
  BadFormat,
  BadString,
  BadContextField,
  BadUpdateOp, ///< an UpdateOp or MapCommandKind out of range
  BadJump,    ///< backward, self, or past the end
  BadProgram, ///< null code, too long, frame too big
  StepLimit,  ///< the run's step budget is spent (a loop that did not end in time)
};

/// Human-readable name of a status, for logs ("bad register").
const char* vm_status_name(VmStatus status);

/// Checks one instruction against its program and module: the same checks the VM makes while
/// running, done ahead of time by the verifier. Returns Ok when the instruction is valid.
VmStatus vm_check_insn(const Insn& insn, uint32_t pc, const VmProgram& program,
                       const VmModule& module);

/// Runs a program to completion. Registers start at zero and the first frame_size bytes of the
/// frame are zeroed. Never faults, whatever the bytes of the program are.
VmStatus vm_run(const VmProgram& program, const VmModule& module, const VmContext& context,
                const VmHost& host, VmState& state);

} // namespace dprobe::bytecode
