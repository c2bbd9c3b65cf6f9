// hits: turns a stopped thread's registers into the context a probe program reads.
#pragma once

#include <sys/types.h>

#include <string>
#include <unordered_map>

#include "process/tracee.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {

/// Thread names, read once per thread from /proc (a file read per hit would dominate).
class CommCache {
 public:
  /// Copies the NUL-terminated name of thread `tid` of process `pid` into `out`.
  void fill(pid_t pid, pid_t tid, char (&out)[16]);
  void forget(pid_t tid) { names_.erase(tid); }
  void clear() { names_.clear(); }

 private:
  std::unordered_map<pid_t, std::string> names_;
};

[[nodiscard]] runtime::HitContext make_hit_context(pid_t pid, pid_t tid,
                                                   const process::Registers& regs,
                                                   CommCache& comms);

/// Fault-safe reads of the target for probe programs (str(), dereference).
class TraceeMemoryReader final : public runtime::MemoryReader {
 public:
  explicit TraceeMemoryReader(const process::Tracee& tracee) : tracee_(tracee) {}
  bool read(uint64_t address, void* dst, size_t length) override;

 private:
  const process::Tracee& tracee_;
};

}  // namespace dprobe::probes
