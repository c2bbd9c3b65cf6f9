// hits: turns a stopped thread's registers into the context a probe program reads.
#pragma once

#include <sys/types.h>

#include <string>
#include <unordered_map>

#include "process/tracee.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {

/// Thread names and ids, read once per thread from /proc (a file read per hit would dominate).
class CommCache {
 public:
  /// Copies the NUL-terminated name of thread `tid` of process `pid` into `out`.
  void fill(pid_t pid, pid_t tid, char (&out)[16]);
  /// The thread's real uid and gid (from its status file).
  void fill_ids(pid_t pid, pid_t tid, uint32_t& uid, uint32_t& gid);
  void forget(pid_t tid) {
    names_.erase(tid);
    ids_.erase(tid);
  }
  void clear() {
    names_.clear();
    ids_.clear();
  }

 private:
  std::unordered_map<pid_t, std::string> names_;
  std::unordered_map<pid_t, std::pair<uint32_t, uint32_t>> ids_;
};

/// The CPU thread `tid` last ran on (field 39 of its stat file), 0 when unreadable.
[[nodiscard]] uint32_t thread_cpu(pid_t pid, pid_t tid);

/// Whether any program of the script reads context field `field` (so a hit must fetch it).
[[nodiscard]] bool script_reads(const lang::CompiledScript& script, bytecode::CtxField field);

/// `address` is the probed instruction's (reg("ip")); `with_cpu` reads the thread's CPU.
[[nodiscard]] runtime::HitContext make_hit_context(pid_t pid, pid_t tid,
                                                   const process::Registers& regs, CommCache& comms,
                                                   uint64_t address = 0, bool with_cpu = false);

/// Fault-safe reads of the target for probe programs (str(), dereference).
class TraceeMemoryReader final : public runtime::MemoryReader {
 public:
  explicit TraceeMemoryReader(const process::Tracee& tracee) : tracee_(tracee) {}
  bool read(uint64_t address, void* dst, size_t length) override;

 private:
  const process::Tracee& tracee_;
};

}  // namespace dprobe::probes
