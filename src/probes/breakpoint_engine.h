// patch -> hits for the int3-ptrace mechanism: int3 on the site, the handler runs in dprobe,
// the copy of the instruction is single-stepped in an out-of-line slot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <span>
#include <functional>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "probes/probe_site.h"
#include "probes/xol_area.h"
#include "process/tracee.h"

namespace dprobe::probes {

/// Called for every hit, before the probed instruction runs; regs.rip is the site address.
using HitHandler = std::function<void(const ProbeSite& site, pid_t tid,
                                      const process::Registers& regs)>;

class BreakpointEngine {
 public:
  BreakpointEngine(process::Tracee& tracee, HitHandler on_hit);

  /// Prepares every slot first, then writes every int3, so a refusal or failure leaves
  /// the code untouched. Precondition: all threads are stopped.
  [[nodiscard]] Status arm(std::vector<ProbeSite> sites);
  /// Arms more sites the same way, next to those armed already (a library the loader just
  /// mapped). Precondition: all threads are stopped.
  [[nodiscard]] Status add(std::vector<ProbeSite> sites);

  /// Forgets the armed sites whose code is no longer mapped executable at their address (a
  /// library dlclose'd): nothing is written, their pages are gone. Returns how many.
  size_t forget_unmapped(std::span<const process::Mapping> maps);

  /// Whether an event belongs to this engine (a hit, a step, a signal during a step).
  enum class Disposition { Consumed, NotOurs };
  [[nodiscard]] Result<Disposition> handle(const process::Event& event);

  /// Restores every original byte and moves threads out of slots and steps, counting hits
  /// that were already reported. Precondition: all threads are stopped (stop_all).
  /// `foreign_int3(address)`: an int3 there is someone else's that stays (the agent's): a
  /// thread caught on it is put back on it instead of getting a SIGTRAP (which would reach the
  /// agent's handler as sent by a process, not by an int3).
  [[nodiscard]] Status disarm(const std::function<bool(uint64_t)>& foreign_int3 = nullptr);

  /// A fork child got a copy of our int3s: give it the original bytes before it runs.
  [[nodiscard]] Status clean_fork_child(pid_t child);

  /// After exec the old image is gone, with every site and slot in it.
  void forget_all();

  /// The process is traced again by a new Tracee (dprobe ran free of it meanwhile; no thread
  /// can be stepping a slot then, the sites left are served by the agent's passthrough).
  void rebind(process::Tracee& tracee) {
    tracee_ = &tracee;
    threads_.clear();
  }

  /// Every site armed so far; forgotten ones stay listed with `armed` false (a thread may still
  /// be stepping one).
  [[nodiscard]] const std::deque<ProbeSite>& sites() const { return sites_; }
  /// Sites armed now.
  [[nodiscard]] size_t armed_count() const { return site_index_.size(); }

 private:
  struct ThreadState {
    ProbeSite* stepping = nullptr;     ///< site whose copy this thread is single-stepping
    std::vector<int> deferred_signals; ///< asynchronous signals that arrived during the step
  };

  [[nodiscard]] ProbeSite* site_at(uint64_t address);
  [[nodiscard]] Result<Disposition> on_trap(const process::Event& event);
  [[nodiscard]] Result<Disposition> on_signal(const process::Event& event);
  /// Completes a step: moves RIP from the slot's jump back to the original next instruction.
  [[nodiscard]] Status finish_step(pid_t tid, ThreadState& state, bool resume);
  void requeue_signals(pid_t tid, std::vector<int>& signals);
  [[nodiscard]] Status consume_pending_trap(pid_t tid);

  process::Tracee* tracee_;  ///< never null; rebind() after dprobe attached again
  HitHandler on_hit_;
  XolArea xol_;
  std::deque<ProbeSite> sites_;  ///< a deque: ThreadState points into it while it grows
  std::unordered_map<uint64_t, size_t> site_index_;
  std::unordered_map<pid_t, ThreadState> threads_;
};

}  // namespace dprobe::probes
