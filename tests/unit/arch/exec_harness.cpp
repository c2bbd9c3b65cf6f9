#include "exec_harness.h"

#include <cstring>

#include "arch/x86_64/writer.h"

extern "C" {
void dprobe_test_run(dprobe::x86_64::testing::CpuState* state, uint64_t* host_rsp_slot);
void dprobe_test_landing();
}

namespace dprobe::x86_64::testing {

static_assert(offsetof(CpuState, rflags) == 120);
static_assert(offsetof(CpuState, rsp) == 128);
static_assert(offsetof(CpuState, entry) == 136);

namespace {

constexpr uint64_t kQuietBase = 0x200000000000; // far from the heap, libraries and stack
constexpr uint64_t kQuietStep = 0x1000000000;

void* map_exactly(uint64_t address, std::size_t size) {
  void* p = ::mmap(reinterpret_cast<void*>(address), size, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (reinterpret_cast<uint64_t>(p) != address) { // kernels before 4.17 treat it as a hint
    ::munmap(p, size);
    return nullptr;
  }
  return p;
}

} // namespace

Result<std::unique_ptr<ExecHarness>> ExecHarness::create(int64_t slot_distance) {
  for (uint64_t i = 0; i < 16; ++i) {
    uint64_t a = kQuietBase + i * kQuietStep;
    void* pa = map_exactly(a, kRegionSize);
    if (pa == nullptr) continue;
    auto ma = std::make_unique<Mapping>(pa, kRegionSize);
    void* pb = map_exactly(a + static_cast<uint64_t>(slot_distance), kRegionSize);
    if (pb == nullptr) continue;
    auto mb = std::make_unique<Mapping>(pb, kRegionSize);
    return std::unique_ptr<ExecHarness>(new ExecHarness(std::move(ma), std::move(mb)));
  }
  return fail_errno("cannot map two RWX regions {:#x} bytes apart", slot_distance);
}

ExecHarness::ExecHarness(std::unique_ptr<Mapping> a, std::unique_ptr<Mapping> b)
    : a_(std::move(a)), b_(std::move(b)), stack_(kStackWords) {
  // Anything the code under test should never reach traps.
  std::memset(a_->bytes(), kInt3, kRegionSize);
  std::memset(b_->bytes(), kInt3, kRegionSize);
  for (std::size_t i = 0; i < data_.size(); ++i) {
    data_[i] = static_cast<uint8_t>(0x11 * (i % 8) + i / 8);
    decoy_data_[i] = static_cast<uint8_t>(~data_[i]);
  }
  write_stub(kTakenOffset, kTaken);
  write_stub(kCalleeOffset, kCallee);
  write_stub(kDecoyOffset, kDecoy);
}

void ExecHarness::write_stub(std::size_t offset, Landing id) {
  uint64_t at = original() + offset;
  CodeWriter w(at);
  // mov dword ptr [rip+marker], id
  w.put_u8(0xc7);
  w.put_u8(0x05);
  w.put_u32(static_cast<uint32_t>(original() + kMarkerOffset - (at + 10)));
  w.put_u32(id);
  // xchg rsp, qword ptr [rip+host_rsp]
  w.put_u8(0x48);
  w.put_u8(0x87);
  w.put_u8(0x25);
  w.put_u32(static_cast<uint32_t>(original() + kHostRspOffset - (w.pc() + 4)));
  w.put_jmp_abs(reinterpret_cast<uint64_t>(&dprobe_test_landing));
  std::memcpy(a_->bytes() + offset, w.code().data(), w.size());
}

void ExecHarness::place_original(std::span<const uint8_t> code) {
  std::memset(a_->bytes(), kInt3, kTakenOffset);
  std::memcpy(a_->bytes(), code.data(), code.size());
  write_stub(code.size(), kFallThrough);
}

void ExecHarness::place_relocated(std::span<const uint8_t> code) {
  std::memset(b_->bytes(), kInt3, kDataOffset);
  std::memcpy(b_->bytes(), code.data(), code.size());
}

void ExecHarness::set_data_qword(std::size_t offset, uint64_t value, bool is_code_pointer) {
  std::memcpy(data_.data() + offset, &value, sizeof(value));
  uint64_t decoy = is_code_pointer ? this->decoy() : ~value;
  std::memcpy(decoy_data_.data() + offset, &decoy, sizeof(decoy));
}

uint64_t ExecHarness::initial_rsp() const {
  return reinterpret_cast<uint64_t>(stack_.data() + kStackWords / 2);
}

RunResult ExecHarness::run(uint64_t entry, CpuState init) {
  std::memcpy(a_->bytes() + kDataOffset, data_.data(), data_.size());
  std::memcpy(b_->bytes() + kDataOffset, decoy_data_.data(), decoy_data_.size());
  std::memset(a_->bytes() + kMarkerOffset, 0, 4);
  for (std::size_t i = 0; i < stack_.size(); ++i)
    stack_[i] = 0x5a5a5a5a00000000 + i;
  for (std::size_t i = 0; i < stack_words_.size(); ++i)
    stack_[kStackWords / 2 + i] = stack_words_[i];

  init.rsp = initial_rsp();
  init.entry = entry;
  init.rflags = (init.rflags & kStatusFlags) | 0x202; // bit 1 is always set; IF is ignored
  auto* host_rsp = reinterpret_cast<uint64_t*>(a_->bytes() + kHostRspOffset);
  dprobe_test_run(&init, host_rsp);

  RunResult out;
  out.regs = init;
  out.rsp = *host_rsp;
  std::memcpy(&out.landing, a_->bytes() + kMarkerOffset, 4);
  auto base = reinterpret_cast<uint64_t>(stack_.data());
  uint64_t top = base + stack_.size() * 8;
  if (out.rsp >= base && out.rsp <= top && (out.rsp - base) % 8 == 0) {
    out.stack.assign(stack_.begin() + static_cast<std::ptrdiff_t>((out.rsp - base) / 8),
                     stack_.end());
  }
  std::memcpy(out.data.data(), a_->bytes() + kDataOffset, out.data.size());
  return out;
}

} // namespace dprobe::x86_64::testing
