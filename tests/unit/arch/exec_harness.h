// Runs machine code for real, so relocated copies can be compared with their originals.
//
// Two RWX regions: A holds the original instruction(s) followed by a landing stub, plus more
// stubs at fixed offsets (branch target, callee, decoy) and a data area; B (the "slot"), at a
// chosen distance from A, holds the relocated copy and, at the same offset as A's data, a decoy
// data area, so that a copy that forgot to re-aim a RIP-relative operand reads the decoy.
#pragma once

#include <sys/mman.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"

namespace dprobe::x86_64::testing {

/// Register file as seen by the code under test. Layout shared with exec_harness_x86_64.S.
struct CpuState {
  uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rbp = 0;
  uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  uint64_t rflags = 0;
  uint64_t rsp = 0;   ///< set by the harness (its private stack)
  uint64_t entry = 0; ///< set by the harness
};

/// CF PF AF ZF SF OF: the flags tests set and compare.
inline constexpr uint64_t kStatusFlags = 0x8d5;
inline constexpr uint64_t kCF = 0x1, kZF = 0x40, kSF = 0x80, kOF = 0x800;

/// Which landing stub ended a run.
enum Landing : uint32_t { kNone = 0, kFallThrough = 1, kTaken = 2, kCallee = 3, kDecoy = 4 };

struct RunResult {
  CpuState regs;
  uint64_t rsp = 0; ///< rsp when the landing stub was reached
  uint32_t landing = kNone;
  std::vector<uint64_t> stack;    ///< live stack: from rsp up to the stack's top
  std::array<uint8_t, 64> data{}; ///< A's data area after the run
};

class Mapping {
 public:
  Mapping(void* address, std::size_t size) : address_(address), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(address_, size_); }
  [[nodiscard]] uint8_t* bytes() const { return static_cast<uint8_t*>(address_); }
  [[nodiscard]] uint64_t address() const { return reinterpret_cast<uint64_t>(address_); }

 private:
  void* address_;
  std::size_t size_;
};

class ExecHarness {
 public:
  static constexpr std::size_t kRegionSize = 0x10000;
  static constexpr std::size_t kMaxCodeLength = 0x20; ///< original code + fall-through stub < 0x40
  static constexpr std::size_t kTakenOffset = 0x40;
  static constexpr std::size_t kCalleeOffset = 0x60;
  static constexpr std::size_t kDecoyOffset = 0x80;
  static constexpr std::size_t kDataOffset = 0x800;
  static constexpr std::size_t kMarkerOffset = 0xf00;
  static constexpr std::size_t kHostRspOffset = 0xf08;
  static constexpr std::size_t kStackWords = 512;

  /// Maps A somewhere quiet and B at A + slot_distance (MAP_FIXED_NOREPLACE).
  static Result<std::unique_ptr<ExecHarness>> create(int64_t slot_distance);

  [[nodiscard]] uint64_t original() const { return a_->address(); }
  [[nodiscard]] uint64_t slot() const { return b_->address(); }
  [[nodiscard]] uint64_t taken() const { return original() + kTakenOffset; }
  [[nodiscard]] uint64_t callee() const { return original() + kCalleeOffset; }
  [[nodiscard]] uint64_t decoy() const { return original() + kDecoyOffset; }
  [[nodiscard]] uint64_t data() const { return original() + kDataOffset; }

  /// Writes `code` at A, followed by the fall-through landing stub.
  void place_original(std::span<const uint8_t> code);
  /// Writes `code` at B.
  void place_relocated(std::span<const uint8_t> code);
  /// Sets a 64-bit word of the data area. A code pointer's decoy (in B) aims at the decoy stub.
  void set_data_qword(std::size_t offset, uint64_t value, bool is_code_pointer = false);
  /// Words placed at rsp, rsp+8, ... before each run.
  void set_stack_words(std::vector<uint64_t> words) { stack_words_ = std::move(words); }
  /// The rsp every run starts with.
  [[nodiscard]] uint64_t initial_rsp() const;

  /// Runs from `entry` (A or B) with `init` (rsp and entry are set by the harness).
  RunResult run(uint64_t entry, CpuState init);

 private:
  ExecHarness(std::unique_ptr<Mapping> a, std::unique_ptr<Mapping> b);
  void write_stub(std::size_t offset, Landing id);

  std::unique_ptr<Mapping> a_;
  std::unique_ptr<Mapping> b_;
  std::array<uint8_t, 64> data_{};
  std::array<uint8_t, 64> decoy_data_{};
  std::vector<uint64_t> stack_;
  std::vector<uint64_t> stack_words_;
};

} // namespace dprobe::x86_64::testing
