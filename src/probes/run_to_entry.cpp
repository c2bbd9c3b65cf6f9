#include "probes/run_to_entry.h"

#include <elf.h>
#include <signal.h>

#include <array>
#include <fstream>

#include <fmt/format.h>

namespace dprobe::probes {
namespace {

Result<uint64_t> read_entry(pid_t pid) {
  std::string path = fmt::format("/proc/{}/auxv", pid);
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail_errno("{}", path);
  Elf64_auxv_t aux{};
  while (in.read(reinterpret_cast<char*>(&aux), sizeof aux)) {
    if (aux.a_type == AT_ENTRY) return aux.a_un.a_val;
    if (aux.a_type == AT_NULL) break;
  }
  return fail("{}: no AT_ENTRY", path);
}

}  // namespace

Status run_to_entry(process::Tracee& tracee) {
  const pid_t pid = tracee.pid();
  auto entry = read_entry(pid);
  if (!entry) return std::unexpected(entry.error());

  std::array<uint8_t, 1> original{};
  if (auto st = tracee.read_memory(*entry, original); !st) return st;
  const std::array<uint8_t, 1> int3{0xCC};
  if (auto st = tracee.write_memory(*entry, int3); !st) return st;

  if (auto st = tracee.resume(pid); !st) return st;
  for (;;) {
    auto event = tracee.next_event(-1);
    if (!event) {
      if (event.error().errno_value == EINTR) continue;
      return std::unexpected(event.error());
    }
    if (!event->has_value()) continue;
    const process::Event& ev = **event;
    using process::EventKind;
    if (ev.kind == EventKind::Exited || ev.kind == EventKind::Killed) {
      return fail("process {} exited before reaching its entry point", pid);
    }
    if (ev.kind == EventKind::Trap && ev.siginfo.si_code == SI_KERNEL) {
      auto regs = tracee.get_registers(ev.tid);
      if (!regs) return std::unexpected(regs.error());
      if (regs->rip == *entry + 1) {
        if (auto st = tracee.write_memory(*entry, original); !st) return st;
        regs->rip = *entry;
        if (auto st = tracee.set_registers(ev.tid, *regs); !st) return st;
        // Other threads (a constructor may start some) are stopped too before probes are armed.
        return tracee.stop_all();
      }
    }
    // Anything else belongs to the program: pass signals through.
    int sig = (ev.kind == EventKind::Signal || ev.kind == EventKind::Trap) ? ev.signal : 0;
    if (ev.kind == EventKind::ThreadExited) continue;
    if (auto st = tracee.resume(ev.tid, sig); !st) return st;
  }
}

}  // namespace dprobe::probes
