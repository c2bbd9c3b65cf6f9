#include "probes/hit_context.h"

#include <time.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace dprobe::probes {

void CommCache::fill(pid_t pid, pid_t tid, char (&out)[16]) {
  auto it = names_.find(tid);
  if (it == names_.end()) {
    std::string name;
    std::ifstream in(fmt::format("/proc/{}/task/{}/comm", pid, tid));
    std::getline(in, name);
    it = names_.emplace(tid, std::move(name)).first;
  }
  std::memset(out, 0, sizeof out);
  std::memcpy(out, it->second.data(), std::min(it->second.size(), sizeof out - 1));
}

void CommCache::fill_ids(pid_t pid, pid_t tid, uint32_t& uid, uint32_t& gid) {
  auto it = ids_.find(tid);
  if (it == ids_.end()) {
    std::pair<uint32_t, uint32_t> ids{0, 0};
    std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, tid));
    std::string line;
    while (std::getline(in, line)) {
      // "Uid:\treal\teffective\tsaved\tfs": bpftrace's uid is the real one.
      if (line.starts_with("Uid:"))
        ids.first = static_cast<uint32_t>(std::strtoul(line.c_str() + 4, nullptr, 10));
      if (line.starts_with("Gid:"))
        ids.second = static_cast<uint32_t>(std::strtoul(line.c_str() + 4, nullptr, 10));
    }
    it = ids_.emplace(tid, ids).first;
  }
  uid = it->second.first;
  gid = it->second.second;
}

uint32_t thread_cpu(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/stat", pid, tid));
  std::string text;
  std::getline(in, text);
  // The name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int n = 3; fields >> field; ++n) {
    if (n == 39) return static_cast<uint32_t>(std::strtoul(field.c_str(), nullptr, 10));
  }
  return 0;
}

bool script_reads(const lang::CompiledScript& script, bytecode::CtxField field) {
  for (const bytecode::Program& program : script.module.programs) {
    for (const bytecode::Insn& insn : program.code) {
      if (insn.op == bytecode::Op::LoadCtx && insn.aux == static_cast<uint32_t>(field)) return true;
    }
  }
  return false;
}

runtime::HitContext make_hit_context(pid_t pid, pid_t tid, const process::Registers& regs,
                                     CommCache& comms, uint64_t address, bool with_cpu) {
  runtime::HitContext ctx;
  ctx.pid = pid;
  ctx.tid = tid;
  // SysV x86-64 integer argument registers, in order.
  ctx.regs_args[0] = regs.rdi;
  ctx.regs_args[1] = regs.rsi;
  ctx.regs_args[2] = regs.rdx;
  ctx.regs_args[3] = regs.rcx;
  ctx.regs_args[4] = regs.r8;
  ctx.regs_args[5] = regs.r9;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ctx.nsecs = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  comms.fill(pid, tid, ctx.comm);
  comms.fill_ids(pid, tid, ctx.uid, ctx.gid);
  if (with_cpu) ctx.cpu = thread_cpu(pid, tid);
  using bytecode::CtxReg;
  auto set = [&](CtxReg reg, uint64_t value) { ctx.regs[static_cast<uint32_t>(reg)] = value; };
  set(CtxReg::R15, regs.r15);
  set(CtxReg::R14, regs.r14);
  set(CtxReg::R13, regs.r13);
  set(CtxReg::R12, regs.r12);
  set(CtxReg::Rbp, regs.rbp);
  set(CtxReg::Rbx, regs.rbx);
  set(CtxReg::R11, regs.r11);
  set(CtxReg::R10, regs.r10);
  set(CtxReg::R9, regs.r9);
  set(CtxReg::R8, regs.r8);
  set(CtxReg::Rax, regs.rax);
  set(CtxReg::Rcx, regs.rcx);
  set(CtxReg::Rdx, regs.rdx);
  set(CtxReg::Rsi, regs.rsi);
  set(CtxReg::Rdi, regs.rdi);
  set(CtxReg::Rip, address != 0 ? address : regs.rip);
  set(CtxReg::Rflags, regs.eflags);
  set(CtxReg::Rsp, regs.rsp);
  return ctx;
}

bool TraceeMemoryReader::read(uint64_t address, void* dst, size_t length) {
  return tracee_.read_memory(address, std::span<uint8_t>(static_cast<uint8_t*>(dst), length))
      .has_value();
}

}  // namespace dprobe::probes
