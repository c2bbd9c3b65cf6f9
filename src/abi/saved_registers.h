// The register frame a jump trampoline pushes before it calls the agent. Freestanding: shared by
// the agent (inside the target), the trampoline writer and the controller.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace dprobe::abi {

/// The trampoline's entry sequence, and so this layout, is fixed:
///   lea rsp, [rsp-128]      ; step over the red zone of the probed code
///   pushfq                  ; only where flags are restored; elsewhere lea rsp, [rsp-136]
///                           ; covers the red zone and leaves this slot unwritten
///   push rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15
/// Lowest address first, so the last register pushed comes first. The trampoline then aligns the
/// stack to 16 bytes and calls agent_dispatch(region, probe_id, &frame) (SysV ABI).
/// The probed code's rsp is (uint64_t)frame + sizeof(SavedRegisters) + kRedZoneSize.
struct SavedRegisters {
  uint64_t r15;
  uint64_t r14;
  uint64_t r13;
  uint64_t r12;
  uint64_t r11;
  uint64_t r10;
  uint64_t r9;
  uint64_t r8;
  uint64_t rdi;
  uint64_t rsi;
  uint64_t rbp;
  uint64_t rbx;
  uint64_t rdx;
  uint64_t rcx;
  uint64_t rax;
  uint64_t rflags; ///< undefined for a trampoline that does not restore flags (function entry)
};
static_assert(sizeof(SavedRegisters) == 16 * 8, "16 pushed quadwords");
static_assert(offsetof(SavedRegisters, rdi) == 8 * 8, "rdi is the 9th push from the bottom");
static_assert(offsetof(SavedRegisters, rflags) == 15 * 8, "pushfq is the first push");

/// Bytes the trampoline skips below the probed code's rsp before pushing (SysV red zone).
inline constexpr uint64_t kRedZoneSize = 128;

struct RegionHeader;

/// The agent's hit entry point. `region` is the region's base address in the target.
using DispatchFunction = void (*)(RegionHeader* region, uint32_t probe_id, SavedRegisters* regs);

} // namespace dprobe::abi
