#include "process/ptrace_calls.h"

#include <sys/ptrace.h>

namespace dprobe::process {
namespace {

Status request(__ptrace_request req, const char* name, pid_t tid, void* addr, void* data) {
  if (::ptrace(req, tid, addr, data) == -1) return fail_errno("ptrace({}, {})", name, tid);
  return {};
}

void* as_data(long value) {
  return reinterpret_cast<void*>(value);
}

} // namespace

long tracee_options() {
  return PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
         PTRACE_O_TRACESYSGOOD;
}

Status ptrace_seize(pid_t tid) {
  return request(PTRACE_SEIZE, "PTRACE_SEIZE", tid, nullptr, as_data(tracee_options()));
}

Status ptrace_interrupt(pid_t tid) {
  return request(PTRACE_INTERRUPT, "PTRACE_INTERRUPT", tid, nullptr, nullptr);
}

Status ptrace_cont(pid_t tid, int signal) {
  return request(PTRACE_CONT, "PTRACE_CONT", tid, nullptr, as_data(signal));
}

Status ptrace_single_step(pid_t tid, int signal) {
  return request(PTRACE_SINGLESTEP, "PTRACE_SINGLESTEP", tid, nullptr, as_data(signal));
}

Status ptrace_listen(pid_t tid) {
  return request(PTRACE_LISTEN, "PTRACE_LISTEN", tid, nullptr, nullptr);
}

Status ptrace_detach(pid_t tid, int signal) {
  return request(PTRACE_DETACH, "PTRACE_DETACH", tid, nullptr, as_data(signal));
}

Result<unsigned long> ptrace_event_message(pid_t tid) {
  unsigned long message = 0;
  if (auto st = request(PTRACE_GETEVENTMSG, "PTRACE_GETEVENTMSG", tid, nullptr, &message); !st) {
    return std::unexpected(st.error());
  }
  return message;
}

Result<siginfo_t> ptrace_get_siginfo(pid_t tid) {
  siginfo_t info{};
  if (auto st = request(PTRACE_GETSIGINFO, "PTRACE_GETSIGINFO", tid, nullptr, &info); !st) {
    return std::unexpected(st.error());
  }
  return info;
}

Status ptrace_set_siginfo(pid_t tid, const siginfo_t& info) {
  return request(PTRACE_SETSIGINFO, "PTRACE_SETSIGINFO", tid, nullptr,
                 const_cast<siginfo_t*>(&info));
}

Result<Registers> ptrace_get_registers(pid_t tid) {
  Registers regs{};
  if (auto st = request(PTRACE_GETREGS, "PTRACE_GETREGS", tid, nullptr, &regs); !st) {
    return std::unexpected(st.error());
  }
  return regs;
}

Status ptrace_set_registers(pid_t tid, const Registers& regs) {
  return request(PTRACE_SETREGS, "PTRACE_SETREGS", tid, nullptr, const_cast<Registers*>(&regs));
}

Result<uint64_t> ptrace_get_sigmask(pid_t tid) {
  uint64_t mask = 0;
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof mask, &mask) == -1) {
    return fail_errno("ptrace(PTRACE_GETSIGMASK, {})", tid);
  }
  return mask;
}

Status ptrace_set_sigmask(pid_t tid, uint64_t mask) {
  if (::ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) == -1) {
    return fail_errno("ptrace(PTRACE_SETSIGMASK, {})", tid);
  }
  return {};
}

} // namespace dprobe::process
