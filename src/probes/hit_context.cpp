#include "probes/hit_context.h"

#include <time.h>

#include <cstring>
#include <fstream>

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

runtime::HitContext make_hit_context(pid_t pid, pid_t tid, const process::Registers& regs,
                                     CommCache& comms) {
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
  return ctx;
}

bool TraceeMemoryReader::read(uint64_t address, void* dst, size_t length) {
  return tracee_.read_memory(address, std::span<uint8_t>(static_cast<uint8_t*>(dst), length))
      .has_value();
}

}  // namespace dprobe::probes
