#include "probes/breakpoint_engine.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include <fstream>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace dprobe::probes {
namespace {

constexpr uint8_t kInt3 = 0xCC;

// Signals the CPU raises for the instruction it just ran: if the copy in a slot raised one,
// the original would have too, so the program must see it at the original address.
bool is_fault_signal(const siginfo_t& info) {
  switch (info.si_signo) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
      return info.si_code > 0;
    default:
      return false;
  }
}

// The thread's private pending-signal mask (SigPnd of /proc/PID/task/TID/status).
std::optional<uint64_t> thread_pending_signals(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, tid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigPnd:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return std::nullopt;
}

}  // namespace

BreakpointEngine::BreakpointEngine(process::Tracee& tracee, HitHandler on_hit)
    : tracee_(&tracee), on_hit_(std::move(on_hit)) {}

ProbeSite* BreakpointEngine::site_at(uint64_t address) {
  auto it = site_index_.find(address);
  return it == site_index_.end() ? nullptr : &sites_[it->second];
}

Status BreakpointEngine::arm(std::vector<ProbeSite> sites) {
  sites_.clear();
  site_index_.clear();
  return add(std::move(sites));
}

Status BreakpointEngine::add(std::vector<ProbeSite> sites) {
  const size_t first = sites_.size();
  for (auto& site : sites) sites_.push_back(std::move(site));
  // Any stopped thread can run the mmap that creates slots; the leader may be a zombie.
  std::vector<pid_t> threads = tracee_->threads();
  if (threads.empty()) return fail("process {} has no live thread to prepare probes in", tracee_->pid());

  for (size_t i = first; i < sites_.size(); ++i) {
    ProbeSite& site = sites_[i];
    const char* name = site.probe_names.front().c_str();
    if (auto ok = x86_64::can_relocate(site.instruction); !ok) {
      return fail("{}: {}", name, ok.error().message);
    }
    Result<uint64_t> slot = fail("no thread could map a slot");
    for (pid_t tid : threads) {
      slot = xol_.allocate(*tracee_, tid, site.address);
      if (slot) break;
    }
    if (!slot) return with_context(slot.error(), name);
    auto code = x86_64::relocate(site.instruction, *slot);
    if (!code) return fail("{}: {}", name, code.error().message);
    if (code->code.size() > XolArea::kSlotSize) {
      return fail("{}: relocated copy of '{}' needs {} bytes, a slot has {}", name,
                  site.instruction.text, code->code.size(), XolArea::kSlotSize);
    }
    if (auto st = tracee_->write_memory(*slot, code->code); !st) return with_context(st.error(), name);
    site.slot_address = *slot;
    site.slot = std::move(*code);
    site_index_[site.address] = i;
  }

  // All threads are stopped: none can execute the byte we rewrite.
  const std::array<uint8_t, 1> int3{kInt3};
  for (size_t i = first; i < sites_.size(); ++i) {
    ProbeSite& site = sites_[i];
    if (auto st = tracee_->write_memory(site.address, int3); !st) {
      (void)disarm();
      return with_context(st.error(), site.probe_names.front());
    }
    site.armed = true;
  }
  return {};
}

size_t BreakpointEngine::forget_unmapped(std::span<const process::Mapping> maps) {
  size_t forgotten = 0;
  for (ProbeSite& site : sites_) {
    if (!site.armed) continue;
    const bool mapped = std::any_of(maps.begin(), maps.end(), [&](const process::Mapping& m) {
      return m.contains(site.address) && m.executable && m.path == site.file_path;
    });
    if (mapped) continue;
    site.armed = false;
    site_index_.erase(site.address);
    ++forgotten;
  }
  return forgotten;
}

Result<BreakpointEngine::Disposition> BreakpointEngine::handle(const process::Event& event) {
  switch (event.kind) {
    case process::EventKind::Trap:
      return on_trap(event);
    case process::EventKind::Signal:
      return on_signal(event);
    case process::EventKind::ThreadExited:
      threads_.erase(event.tid);
      return Disposition::NotOurs;
    default:
      return Disposition::NotOurs;
  }
}

Result<BreakpointEngine::Disposition> BreakpointEngine::on_trap(const process::Event& event) {
  auto state_it = threads_.find(event.tid);
  if (state_it != threads_.end() && state_it->second.stepping != nullptr) {
    if (auto st = finish_step(event.tid, state_it->second, true); !st) return std::unexpected(st.error());
    return Disposition::Consumed;
  }
  if (event.siginfo.si_code != SI_KERNEL) return Disposition::NotOurs;  // not an int3

  auto regs = tracee_->get_registers(event.tid);
  if (!regs) return std::unexpected(regs.error());
  ProbeSite* site = site_at(regs->rip - 1);
  if (site == nullptr || !site->armed) return Disposition::NotOurs;

  regs->rip = site->address;
  on_hit_(*site, event.tid, *regs);

  // Never step the original in place: other threads would run past the probe unseen while
  // the int3 is lifted. The copy in the slot behaves as the original.
  regs->rip = site->slot_address;
  if (auto st = tracee_->set_registers(event.tid, *regs); !st) return std::unexpected(st.error());
  threads_[event.tid].stepping = site;
  if (auto st = tracee_->single_step(event.tid); !st) return std::unexpected(st.error());
  return Disposition::Consumed;
}

Result<BreakpointEngine::Disposition> BreakpointEngine::on_signal(const process::Event& event) {
  auto it = threads_.find(event.tid);
  if (it == threads_.end() || it->second.stepping == nullptr) return Disposition::NotOurs;
  ThreadState& state = it->second;
  ProbeSite* site = state.stepping;

  if (is_fault_signal(event.siginfo)) {
    auto regs = tracee_->get_registers(event.tid);
    if (!regs) return std::unexpected(regs.error());
    const bool at_copy = regs->rip == site->slot_address;
    // An emulated `call [mem]` faults on its jump, after pushing the return address.
    const bool at_call_jump = site->slot.call_fault_point != 0 &&
                              regs->rip == site->slot.call_fault_point;
    if (at_copy || at_call_jump) {
      // The copy faulted before completing: the program sees the fault at the original
      // instruction, and re-executing it after a handler returns hits the probe again.
      if (at_call_jump) regs->rsp += 8;
      regs->rip = site->address;
      if (auto st = tracee_->set_registers(event.tid, *regs); !st) return std::unexpected(st.error());
      state.stepping = nullptr;
      requeue_signals(event.tid, state.deferred_signals);
      if (auto st = tracee_->resume(event.tid, event.signal); !st) return std::unexpected(st.error());
      return Disposition::Consumed;
    }
  }
  // An asynchronous signal during the step: hold it until the step is complete, so the
  // handler never starts with RIP inside a slot.
  state.deferred_signals.push_back(event.signal);
  if (auto st = tracee_->single_step(event.tid); !st) return std::unexpected(st.error());
  return Disposition::Consumed;
}

Status BreakpointEngine::finish_step(pid_t tid, ThreadState& state, bool resume) {
  ProbeSite* site = state.stepping;
  auto regs = tracee_->get_registers(tid);
  if (!regs) return std::unexpected(regs.error());
  const bool inside_slot = regs->rip > site->slot_address &&
                           regs->rip < site->slot_address + site->slot.code.size() &&
                           regs->rip != site->slot.resume_jump;
  if (inside_slot && resume) {
    // A copy of more than one instruction (an emulated call: push, then jmp): keep stepping
    // until it leaves the slot, so a fault in its second half is still reported at the call.
    return tracee_->single_step(tid);
  }
  state.stepping = nullptr;
  if (regs->rip == site->slot_address) {
    // Not executed yet (stopped before the step): run the original, now restored, instead.
    regs->rip = site->address;
    if (auto st = tracee_->set_registers(tid, *regs); !st) return st;
  } else if (regs->rip == site->slot.resume_jump) {
    // Fell through: skip the slot's jump back and continue at the original next instruction.
    regs->rip = site->address + site->instruction.length;
    if (auto st = tracee_->set_registers(tid, *regs); !st) return st;
  }
  // Otherwise RIP is at a branch target, or on the slot's own jump code, which stays mapped.
  if (!resume) return {};
  int first = 0;
  if (!state.deferred_signals.empty()) {
    first = state.deferred_signals.front();
    state.deferred_signals.erase(state.deferred_signals.begin());
  }
  requeue_signals(tid, state.deferred_signals);
  return tracee_->resume(tid, first);
}

void BreakpointEngine::requeue_signals(pid_t tid, std::vector<int>& signals) {
  for (int sig : signals) ::syscall(SYS_tgkill, tracee_->pid(), tid, sig);
  signals.clear();
}

Status BreakpointEngine::disarm(const std::function<bool(uint64_t)>& foreign_int3) {
  // Hits reported before the world stopped are still queued: count them and put those
  // threads back on the original instruction, which is restored below.
  for (;;) {
    auto event = tracee_->next_event(0);
    if (!event) return std::unexpected(event.error());
    if (!event->has_value()) break;
    const process::Event& ev = **event;
    auto st_it = threads_.find(ev.tid);
    bool stepping = st_it != threads_.end() && st_it->second.stepping != nullptr;
    if (ev.kind == process::EventKind::Trap && stepping) {
      if (auto st = finish_step(ev.tid, st_it->second, false); !st) return st;
      requeue_signals(ev.tid, st_it->second.deferred_signals);
    } else if (ev.kind == process::EventKind::Trap && ev.siginfo.si_code == SI_KERNEL) {
      auto regs = tracee_->get_registers(ev.tid);
      if (!regs) return std::unexpected(regs.error());
      if (ProbeSite* site = site_at(regs->rip - 1); site != nullptr && site->armed) {
        regs->rip = site->address;
        on_hit_(*site, ev.tid, *regs);
        if (auto st = tracee_->set_registers(ev.tid, *regs); !st) return st;
      } else if (foreign_int3 && foreign_int3(regs->rip - 1)) {
        regs->rip -= 1;
        if (auto st = tracee_->set_registers(ev.tid, *regs); !st) return st;
      } else {
        ::syscall(SYS_tgkill, tracee_->pid(), ev.tid, SIGTRAP);
      }
    } else if (ev.kind == process::EventKind::Signal || ev.kind == process::EventKind::Trap) {
      if (stepping && is_fault_signal(ev.siginfo)) {
        // Let the step logic below move RIP back to the original instruction; the fault
        // recurs there by itself.
      } else {
        ::syscall(SYS_tgkill, tracee_->pid(), ev.tid, ev.signal);
      }
    } else if (ev.kind == process::EventKind::ThreadExited) {
      threads_.erase(ev.tid);
    }
  }

  Status result;
  for (auto& site : sites_) {
    if (!site.armed) continue;
    std::array<uint8_t, 1> original{site.instruction.bytes[0]};
    if (auto st = tracee_->write_memory(site.address, original); !st && result) result = st;
    site.armed = false;
  }
  for (pid_t tid : tracee_->threads()) {
    if (auto st = consume_pending_trap(tid); !st && result) result = st;
  }
  for (auto& [tid, state] : threads_) {
    if (state.stepping == nullptr) continue;
    if (auto st = finish_step(tid, state, false); !st && result) result = st;
    requeue_signals(tid, state.deferred_signals);
  }
  threads_.clear();
  return result;
}

// A thread interrupted right after an int3 or a step may hold its SIGTRAP pending behind the
// interrupt stop (the kernel reports job-control traps before dequeuing signals). Detached, it
// would die of that SIGTRAP: let it take the signal under our control first.
Status BreakpointEngine::consume_pending_trap(pid_t tid) {
  auto pending = thread_pending_signals(tracee_->pid(), tid);
  if (!pending || (*pending & (uint64_t{1} << (SIGTRAP - 1))) == 0) return {};
  if (auto st = tracee_->resume(tid); !st) return st;
  for (;;) {
    auto event = tracee_->next_event(2000);
    if (!event) return std::unexpected(event.error());
    if (!event->has_value()) return fail("thread {}: pending SIGTRAP was not delivered", tid);
    const process::Event& ev = **event;
    if (ev.tid != tid) continue;  // the world is stopped: only this thread can report
    if (ev.kind == process::EventKind::ThreadExited || ev.kind == process::EventKind::Exited ||
        ev.kind == process::EventKind::Killed) {
      threads_.erase(tid);
      return {};
    }
    if (ev.kind != process::EventKind::Trap) {
      // Another signal came first; it is re-queued and the SIGTRAP stays for the next pass.
      ::syscall(SYS_tgkill, tracee_->pid(), tid, ev.signal);
      return {};
    }
    auto st_it = threads_.find(tid);
    if (st_it != threads_.end() && st_it->second.stepping != nullptr) {
      // The step trap: the copy ran, and finish_step below moves RIP out of the slot.
      return {};
    }
    auto regs = tracee_->get_registers(tid);
    if (!regs) return std::unexpected(regs.error());
    if (ProbeSite* site = site_at(regs->rip - 1); site != nullptr && ev.siginfo.si_code == SI_KERNEL) {
      regs->rip = site->address;  // the original byte is back: it runs the real instruction
      on_hit_(*site, tid, *regs);
      return tracee_->set_registers(tid, *regs);
    }
    ::syscall(SYS_tgkill, tracee_->pid(), tid, SIGTRAP);  // the program's own SIGTRAP
    return {};
  }
}

Status BreakpointEngine::clean_fork_child(pid_t child) {
  for (const auto& site : sites_) {
    if (!site.armed) continue;
    std::array<uint8_t, 1> original{site.instruction.bytes[0]};
    if (auto st = tracee_->write_memory_of(child, site.address, original); !st) return st;
  }
  return {};
}

void BreakpointEngine::forget_all() {
  sites_.clear();
  site_index_.clear();
  threads_.clear();
  xol_ = XolArea{};
}

}  // namespace dprobe::probes
