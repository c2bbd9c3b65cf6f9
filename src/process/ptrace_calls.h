// Thin wrappers over ptrace(2) requests that return errors as values naming the request.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>

#include "common/result.h"

namespace dprobe::process {

using Registers = user_regs_struct;

/// Options on every tracee. Never PTRACE_O_EXITKILL: killing dprobe must not kill the target.
long tracee_options();

[[nodiscard]] Status ptrace_seize(pid_t tid);
[[nodiscard]] Status ptrace_interrupt(pid_t tid);
[[nodiscard]] Status ptrace_cont(pid_t tid, int signal);
[[nodiscard]] Status ptrace_single_step(pid_t tid, int signal);
[[nodiscard]] Status ptrace_listen(pid_t tid);
[[nodiscard]] Status ptrace_detach(pid_t tid, int signal);
[[nodiscard]] Result<unsigned long> ptrace_event_message(pid_t tid);
[[nodiscard]] Result<siginfo_t> ptrace_get_siginfo(pid_t tid);
[[nodiscard]] Status ptrace_set_siginfo(pid_t tid, const siginfo_t& info);
[[nodiscard]] Result<Registers> ptrace_get_registers(pid_t tid);
[[nodiscard]] Status ptrace_set_registers(pid_t tid, const Registers& regs);
/// The thread's blocked-signal mask (bit N-1 is signal N).
[[nodiscard]] Result<uint64_t> ptrace_get_sigmask(pid_t tid);
[[nodiscard]] Status ptrace_set_sigmask(pid_t tid, uint64_t mask);

} // namespace dprobe::process
