// Test harness: a compiled script in a real (memfd) region, and an agent to hit it with, either
// the blob loaded into executable memory of this process or the agent sources linked normally.
// Hits are direct calls of the dispatcher with a fake saved-register frame; no ptrace.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "abi/region.h"
#include "abi/saved_registers.h"
#include "agent/region_layout.h"
#include "agent/region_reader.h"
#include "agent/region_writer.h"
#include "agent/shared_region.h"
#include "bytecode/module.h"

namespace dprobe::agent::testing {

enum class AgentKind { Blob, Native };

inline const char* kind_name(AgentKind kind) {
  return kind == AgentKind::Blob ? "Blob" : "Native";
}

/// The embedded blob, copied into fresh pages of this process and made read+execute.
class LoadedBlob {
 public:
  explicit LoadedBlob(uint64_t region_address);
  LoadedBlob(const LoadedBlob&) = delete;
  LoadedBlob& operator=(const LoadedBlob&) = delete;
  ~LoadedBlob();

  [[nodiscard]] uint8_t* base() const { return base_; }
  [[nodiscard]] abi::DispatchFunction dispatch() const;
  [[nodiscard]] void* sigtrap() const;
  [[nodiscard]] void* restorer() const;

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

/// abi::kFeatureFsGsBase when this CPU and kernel let user space use rdfsbase.
uint32_t host_features();

/// Compiles a script (ASSERTs on errors), one probe per probe block.
bytecode::Module compile_script(std::string_view script, std::vector<ProbeSpec>* probes);

/// A packed 8-byte integer key.
std::string int_key(uint64_t value);

/// A region holding `module`, an agent, and a reader.
class Harness {
 public:
  Harness(bytecode::Module module, std::vector<ProbeSpec> probes, AgentKind kind,
          RegionOptions options = default_options());
  /// Compiles `script`; probe i is the script's i-th probe block.
  Harness(std::string_view script, AgentKind kind, RegionOptions options = default_options());

  static RegionOptions default_options();

  /// One hit of probe `probe_id` with these argument registers.
  void hit(uint32_t probe_id, uint64_t arg0 = 0, uint64_t arg1 = 0, uint64_t arg2 = 0,
           uint64_t arg3 = 0, uint64_t arg4 = 0, uint64_t arg5 = 0) const;
  void hit_with(uint32_t probe_id, abi::SavedRegisters& regs) const;

  [[nodiscard]] abi::DispatchFunction dispatch() const { return dispatch_; }
  [[nodiscard]] abi::RegionHeader* header() const {
    return reinterpret_cast<abi::RegionHeader*>(memory_->bytes().data());
  }
  [[nodiscard]] std::span<uint8_t> region() const { return memory_->bytes(); }
  [[nodiscard]] const RegionLayout& layout() const { return layout_; }
  [[nodiscard]] const bytecode::Module& module() const { return module_; }
  [[nodiscard]] RegionReader& reader() { return *reader_; }
  [[nodiscard]] LoadedBlob* blob() const { return blob_.get(); }
  /// Merged map `map_id` as key bytes -> value.
  std::map<std::string, uint64_t> map(uint32_t map_id);
  /// Value of a map without keys (0 when absent).
  uint64_t scalar(uint32_t map_id);

 private:
  void setup(AgentKind kind, const RegionOptions& options);

  bytecode::Module module_;
  std::vector<ProbeSpec> probes_;
  RegionLayout layout_;
  std::unique_ptr<SharedRegion> memory_;
  std::unique_ptr<LoadedBlob> blob_;
  std::unique_ptr<RegionReader> reader_;
  abi::DispatchFunction dispatch_ = nullptr;
};

} // namespace dprobe::agent::testing

/// The natively linked agent's entry points and its stand-in blob header.
extern "C" {
void agent_dispatch(dprobe::abi::RegionHeader* region, uint32_t probe_id,
                    dprobe::abi::SavedRegisters* regs);
void agent_sigtrap(int signal, void* info, void* ucontext);
}
