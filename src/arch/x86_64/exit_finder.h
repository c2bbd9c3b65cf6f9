// Finds every way out of a function, for return probes placed the DTrace pid-provider way: a
// probe on each exit instruction, fired before it runs, so the stack is never touched (no
// return-address hijack that C++ unwinding, longjmp or a thread exit would trip over).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "arch/x86_64/decoder.h"
#include "common/result.h"

namespace dprobe::x86_64 {

/// One contiguous piece of a function: its body, or a hot/cold split part ("foo.cold").
struct FunctionPart {
  std::span<const Instruction> instructions; ///< decode_all of [start, end)
  uint64_t start = 0, end = 0;
};

enum class ExitKind {
  Return,       ///< ret / ret imm16 (any prefixes: repz, bnd)
  TailJump,     ///< jmp rel8/rel32 to outside every part of the function
  IndirectJump, ///< jmp through a register or memory whose target cannot be known
};

struct ExitSite {
  Instruction instruction;
  ExitKind kind = ExitKind::Return;
};

struct ExitScan {
  std::vector<ExitSite> exits;     ///< in address order, part by part
  std::vector<std::string> notes;  ///< decisions a user may want to know (-v)
};

/// "ret", "tail jump", "indirect jump".
[[nodiscard]] const char* exit_kind_name(ExitKind kind);

/// The exits of the function made of `parts` (parts[0]: the body starting at the symbol).
/// The rules (tested in tests/unit/arch/exit_finder_test.cpp):
///  - every `ret` is an exit;
///  - an unconditional relative `jmp` whose target is outside every part is a tail call: an
///    exit (the callee returns straight to our caller); inside a part it is internal flow;
///  - `jmp [rip+disp]` (a pointer in the GOT or a table of one pointer) is a tail call: an exit;
///  - any other indirect `jmp` (register, or memory with base/index: a switch's jump table)
///    cannot be told apart from a jump table. It is taken as an exit only when the function has
///    no other exit (then it must be how the function leaves); otherwise it is assumed to be a
///    jump table inside the function, and a note says so;
///  - a conditional jump to outside every part (a conditional tail call) is refused: a probe
///    before it would also fire when it falls through, counting one return twice;
///  - a `call` is not an exit (a call to a function that does not return leaves no return);
///  - no exit at all is an error (the function never returns: nothing to probe).
[[nodiscard]] Result<ExitScan> find_exits(std::span<const FunctionPart> parts);

} // namespace dprobe::x86_64
