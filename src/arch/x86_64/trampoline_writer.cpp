#include "arch/x86_64/trampoline_writer.h"

#include <algorithm>
#include <iterator>

#include "abi/saved_registers.h"
#include "arch/x86_64/writer.h"

namespace dprobe::x86_64 {

// The agent reads the frame as abi::SavedRegisters: keep the push order below in step with it.
static_assert(sizeof(abi::SavedRegisters) == kTrampolineFrameSize);
static_assert(abi::kRedZoneSize == kTrampolineRedZone);
static_assert(offsetof(abi::SavedRegisters, rflags) == 15 * 8, "pushed first");
static_assert(offsetof(abi::SavedRegisters, rax) == 14 * 8, "pushed right after rflags");
static_assert(offsetof(abi::SavedRegisters, r15) == 0, "pushed last");

namespace {

// clang-format off
enum Reg : uint8_t {
  kRax = 0, kRcx = 1, kRdx = 2, kRbx = 3, kRsp = 4, kRbp = 5, kRsi = 6, kRdi = 7,
  kR8 = 8, kR9, kR10, kR11, kR12, kR13, kR14, kR15,
};
// clang-format on

/// Push order; the frame's lowest address holds the last one.
constexpr Reg kPushOrder[] = {kRax, kRcx, kRdx, kRbx, kRbp, kRsi, kRdi, kR8,
                              kR9,  kR10, kR11, kR12, kR13, kR14, kR15};
static_assert(std::size(kPushOrder) * 8 + 8 == kTrampolineFrameSize);

void put_push(CodeWriter& w, Reg reg) {
  if (reg >= kR8) w.put_u8(0x41); // REX.B
  w.put_u8(static_cast<uint8_t>(0x50 | (reg & 7)));
}

void put_pop(CodeWriter& w, Reg reg) {
  if (reg >= kR8) w.put_u8(0x41);
  w.put_u8(static_cast<uint8_t>(0x58 | (reg & 7)));
}

/// `lea rsp, [rsp+disp]`: moves rsp without touching the flags.
void put_lea_rsp(CodeWriter& w, int32_t disp) {
  if (disp >= -128 && disp <= 127) {
    w.put_bytes(std::to_array<uint8_t>({0x48, 0x8d, 0x64, 0x24})); // disp8
    w.put_u8(static_cast<uint8_t>(disp));
  } else {
    w.put_bytes(std::to_array<uint8_t>({0x48, 0x8d, 0xa4, 0x24})); // disp32
    w.put_u32(static_cast<uint32_t>(disp));
  }
}

/// `mov dst, src` for 64-bit registers rax..rdi.
void put_mov_reg(CodeWriter& w, Reg dst, Reg src) {
  w.put_u8(0x48);
  w.put_u8(0x89);
  w.put_u8(static_cast<uint8_t>(0xc0 | (src << 3) | dst));
}

constexpr auto kRedZone = static_cast<int32_t>(kTrampolineRedZone);

/// Restores CF PF AF ZF SF OF and DF from the saved rflags at [rsp+8] (rax still at [rsp]),
/// clobbering rax. Not popfq: popfq costs about 4.6 ns here against 0.9 ns for this sequence
/// (a bare trampoline costs 3.7 ns). The other flags are the dispatcher's, which does not change
/// them (TF, AC, ID; IF and IOPL cannot change in user mode). sahf in 64-bit mode needs the
/// LAHF-SAHF CPUID bit, present on every x86-64 CPU since 2005.
void put_restore_flags(CodeWriter& w) {
  w.put_bytes(std::to_array<uint8_t>({
      0x0f, 0xb6, 0x44, 0x24, 0x09, // movzx eax, byte ptr [rsp+9]: TF IF DF OF IOPL NT
      0xa8, 0x04,                   // test al, 4 (DF)
      0x74, 0x01,                   // jz +1
      0xfd,                         // std (the dispatcher returns with DF clear)
      0x24, 0x08,                   // and al, 8 (OF)
      0x8a, 0x64, 0x24, 0x08,       // mov ah, byte ptr [rsp+8]: CF PF AF ZF SF
      0x04, 0x78,                   // add al, 0x78: overflows exactly when OF was set
      0x9e,                         // sahf: SF ZF AF PF CF from ah, OF and DF kept
  }));
}

} // namespace

Result<Trampoline> write_trampoline(const TrampolineSpec& spec) {
  if (spec.replaced.empty()) {
    return fail("{}: trampoline for probe {} replaces no instructions",
                format_address(spec.address), spec.probe_id);
  }
  const uint64_t site = spec.replaced.front().address;
  if (!fits_rel32(site + kJmpRel32Length, spec.address)) {
    return fail("{}: trampoline at {} is out of ±2 GiB reach of the jump", format_address(site),
                format_address(spec.address));
  }

  CodeWriter w(spec.address);
  if (spec.run_before >= spec.replaced.size()) {
    return fail("{}: trampoline for probe {} runs all {} instructions before the probe",
                format_address(site), spec.probe_id, spec.replaced.size());
  }
  const std::span<const Instruction> before = spec.replaced.first(spec.run_before);
  const std::span<const Instruction> after = spec.replaced.subspan(spec.run_before);
  std::vector<std::pair<uint64_t, uint64_t>> before_map;
  if (!before.empty()) {
    // The copies fall through into the save sequence: drop relocate_block's jump back.
    auto copied = relocate_block(before, w.pc());
    if (!copied) return std::unexpected(copied.error());
    w.put_bytes(std::span<const uint8_t>(copied->code.data(), copied->resume_jump - w.pc()));
    before_map = std::move(copied->address_map);
  }
  const uint64_t handler_start = w.pc();
  if (spec.save_flags) {
    put_lea_rsp(w, -kRedZone); // the probed code may keep live data below its rsp
    w.put_u8(0x9c);            // pushfq
    w.put_u8(0xfc);            // cld: the dispatcher is compiled code
  } else {
    // The red zone and the frame's rflags slot in one step: nothing restores the flags, so
    // pushfq (several microcoded uops, on every hit) would only fill a slot no one reads.
    put_lea_rsp(w, -kRedZone - 8);
  }
  for (Reg reg : kPushOrder)
    put_push(w, reg);

  w.put_mov_imm64(kRdi, spec.region);
  w.put_u8(0xbe); // mov esi, imm32
  w.put_u32(spec.probe_id);
  put_mov_reg(w, kRdx, kRsp); // the frame
  put_mov_reg(w, kRbx, kRsp); // callee-saved, already in the frame
  w.put_bytes(std::to_array<uint8_t>({0x48, 0x83, 0xe4, 0xf0})); // and rsp, -16
  if (fits_rel32(w.pc() + 5, spec.dispatch)) {
    w.put_u8(0xe8); // call rel32: direct, nothing for the indirect-branch predictor to miss
    w.put_u32(static_cast<uint32_t>(spec.dispatch - (w.pc() + 4)));
  } else {
    w.put_mov_imm64(kRax, spec.dispatch);
    w.put_bytes(std::to_array<uint8_t>({0xff, 0xd0})); // call rax
  }
  const uint64_t dispatch_return = w.pc();
  put_mov_reg(w, kRsp, kRbx);

  // Every register but rax; then rax is the scratch register for the flags, if restored.
  for (auto it = std::rbegin(kPushOrder); std::next(it) != std::rend(kPushOrder); ++it)
    put_pop(w, *it);
  if (spec.save_flags) put_restore_flags(w);
  put_pop(w, kRax);
  put_lea_rsp(w, kRedZone + 8); // the saved flags and the red zone

  const uint64_t relocated_start = w.pc();
  auto relocated = relocate_block(after, relocated_start);
  if (!relocated) return std::unexpected(relocated.error());
  w.put_bytes(relocated->code);

  Trampoline out;
  out.code = w.take();
  out.relocated_start = before.empty() ? relocated_start : spec.address;
  out.resume = spec.replaced.back().end();
  if (before.empty()) {
    out.address_map = std::move(relocated->address_map);
  } else {
    out.address_map = std::move(before_map);
    // A thread stopped at the probed instruction has not been seen yet: through the handler.
    out.address_map.emplace_back(after.front().address, handler_start);
    for (std::size_t i = 1; i < relocated->address_map.size(); ++i)
      out.address_map.push_back(relocated->address_map[i]);
  }
  out.restart_after_syscall = relocated->restart_after_syscall;
  out.dispatch_return = dispatch_return;
  return out;
}

Result<std::optional<uint64_t>> relocated_pc(const Trampoline& trampoline, uint64_t pc,
                                             bool in_syscall) {
  if (in_syscall && trampoline.restart_after_syscall &&
      pc == trampoline.restart_after_syscall->first) {
    return trampoline.restart_after_syscall->second;
  }
  if (trampoline.address_map.empty()) return std::nullopt;
  const uint64_t start = trampoline.address_map.front().first;
  if (pc <= start || pc >= trampoline.resume) return std::nullopt;
  auto it = std::find_if(trampoline.address_map.begin(), trampoline.address_map.end(),
                         [pc](const auto& entry) { return entry.first == pc; });
  if (it == trampoline.address_map.end()) {
    return fail("{}: thread stopped inside the replaced bytes [{}, {}), not at an instruction "
                "boundary",
                format_address(pc), format_address(start), format_address(trampoline.resume));
  }
  return it->second;
}

} // namespace dprobe::x86_64
