// A probe hit: find the thread's state, count the hit, run the probe's programs with the VM.
//
// The common case (a thread seen before, nothing the programs read needs the kernel) makes no
// system call, takes no lock and uses no atomic instruction: the thread's slot is found by its
// fs base (rdfsbase), its hit counter and sharded map values are bumped with plain adds, and its
// VmState lives in the region, not on the target's stack.
#include "agent/blob/agent.h"
#include "agent/blob/atomics.h"
#include "agent/blob/syscalls.h"

namespace dprobe::agent::blob {

namespace {

/// What the VmHost callbacks of one hit need.
struct HitEnv {
  RegionHeader* h;
  uint64_t* block;  ///< the thread block, null on the shared path
  uint64_t pid;     ///< 0 when not fetched
};

bool host_read(void* ctx, uint64_t address, void* dst, uint64_t length) {
  auto* env = static_cast<HitEnv*>(ctx);
  if (length == 0) return true;
  if (env->pid == 0) env->pid = static_cast<uint64_t>(syscall0(kSysGetpid));
  // process_vm_readv on ourselves: a bad address is an error return, never a SIGSEGV, and pages
  // not yet faulted in (a string literal in untouched .rodata) are read all the same.
  IoVec local{dst, length};
  IoVec remote{reinterpret_cast<void*>(address), length};
  const long n = syscall6(kSysProcessVmReadv, static_cast<long>(env->pid),
                          reinterpret_cast<long>(&local), 1, reinterpret_cast<long>(&remote), 1, 0);
  return n >= 0 && static_cast<uint64_t>(n) == length;
}

bool host_lookup(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size,
                 uint64_t* value) {
  auto* env = static_cast<HitEnv*>(ctx);
  return map_lookup(env->h, env->block, map_id, key, key_size, value);
}

bool host_update(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size, uint32_t op,
                 uint64_t value) {
  auto* env = static_cast<HitEnv*>(ctx);
  return map_update(env->h, env->block, map_id, key, key_size, op, value);
}

void host_delete(void* ctx, uint32_t map_id, const uint8_t* key, uint32_t key_size) {
  auto* env = static_cast<HitEnv*>(ctx);
  map_delete(env->h, env->block, map_id, key, key_size);
}

void host_printf(void* ctx, uint32_t format_id, const uint8_t* args, uint32_t size) {
  auto* env = static_cast<HitEnv*>(ctx);
  ring_emit(env->h, format_id, args, size);
}

void host_exit(void* ctx) {
  auto* env = static_cast<HitEnv*>(ctx);
  store_release(&env->h->exit_requested, uint32_t{1});
}

void record_vm_error(RegionHeader* h, bytecode::VmStatus status) {
  count_event(&h->counters.vm_errors);
  store_relaxed(&h->counters.last_vm_status, static_cast<uint64_t>(status));
}

uint64_t argument(const abi::SavedRegisters& regs, uint32_t n) {
  switch (n) {
    case 0:
      return regs.rdi;
    case 1:
      return regs.rsi;
    case 2:
      return regs.rdx;
    case 3:
      return regs.rcx;
    case 4:
      return regs.r8;
    default:
      return regs.r9;
  }
}

void fill_context(RegionHeader* h, const abi::ProbeEntry& probe, const abi::SavedRegisters& regs,
                  abi::ThreadSlot* slot, bytecode::VmContext& context) {
  context.args[0] = regs.rdi;
  context.args[1] = regs.rsi;
  context.args[2] = regs.rdx;
  context.args[3] = regs.rcx;
  context.args[4] = regs.r8;
  context.args[5] = regs.r9;
  context.retval = regs.rax;
  context.pid = 0;
  context.tid = 0;
  context.nsecs = 0;
  for (char& c : context.comm) c = 0;
  const uint32_t flags = probe.context_flags;
  if (__builtin_expect(flags != 0, 0)) {
    fill_identity(slot, flags, context);
    if (flags & abi::kNeedsNsecs) context.nsecs = monotonic_ns(h);
  }
}

void run_programs(RegionHeader* h, const abi::ProbeEntry& probe, const abi::SavedRegisters& regs,
                  abi::ThreadSlot* slot, uint64_t* block, bytecode::VmState& state) {
  const auto* programs = area<const abi::ProgramDesc>(h, h->programs);
  const auto* code = area<const bytecode::Insn>(h, h->code);
  uint32_t count = probe.program_count;
  if (count > abi::kMaxProgramsPerProbe) count = abi::kMaxProgramsPerProbe;
  // Built for the first program that needs the interpreter.
  bool interpreter_ready = false;
  bytecode::VmContext context;
  HitEnv env{h, block, 0};
  const bytecode::VmHost host{&env,        &host_read,   &host_lookup, &host_update,
                              &host_delete, &host_printf, &host_exit};
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t index = probe.programs[i];
    if (__builtin_expect(index >= h->program_count, 0)) {
      record_vm_error(h, bytecode::VmStatus::BadProgram);
      continue;
    }
    // ProgramDescs were checked by ensure_prepared.
    const abi::ProgramDesc& desc = programs[index];
    const uint32_t fast = load_relaxed(&desc.fast);
    if (fast != abi::kFastNone && block != nullptr) {
      const uint64_t key = fast == abi::kFastCountByArg ? argument(regs, desc.fast_arg) : 0;
      const uint32_t key_size = fast == abi::kFastCountByArg ? 8 : 0;
      if (map_fast_add(h, block, desc.fast_map, reinterpret_cast<const uint8_t*>(&key), key_size,
                       1)) {
        continue;
      }
    }
    if (!interpreter_ready) {
      fill_context(h, probe, regs, slot, context);
      env.pid = context.pid;
      interpreter_ready = true;
    }
    const bytecode::VmProgram program{code + desc.code_offset, desc.length, desc.frame_size};
    const bytecode::VmStatus status =
        bytecode::vm_run(program, prepared_module(h), context, host, state);
    if (__builtin_expect(status != bytecode::VmStatus::Ok, 0) &&
        status != bytecode::VmStatus::Exited) {
      record_vm_error(h, status);
    }
  }
}

inline uint64_t read_fs_base() {
  uint64_t base;
  __asm__ volatile("rdfsbase %0" : "=r"(base));
  return base;
}

/// Runs the programs on pooled scratch: for hits without a thread slot (no FSGSBASE, fs base 0
/// before TLS is set up, a full thread table), nested deeper than kMaxNesting, or whose level
/// scratch the arena had no room for.
void run_pooled(RegionHeader* h, const abi::ProbeEntry& probe, const abi::SavedRegisters& regs,
                abi::ThreadSlot* slot, uint64_t* block) {
  abi::ScratchState* scratch = claim_scratch(h);
  if (scratch == nullptr) {
    count_event(&h->counters.dropped_hits);
    return;
  }
  run_programs(h, probe, regs, slot, block, *reinterpret_cast<bytecode::VmState*>(scratch->state));
  release_scratch(scratch);
}

}  // namespace

void dispatch_hit(RegionHeader* h, uint32_t probe_id, const abi::SavedRegisters& regs) {
  if (load_acquire(&h->enabled) == 0) return;
  if (__builtin_expect(load_acquire(&h->module_state) != abi::kModuleReady, 0) &&
      !ensure_prepared(h)) {
    count_event(&h->counters.invalid_region);
    return;
  }
  if (__builtin_expect(probe_id >= h->probe_capacity, 0)) {
    count_event(&h->counters.bad_probe_ids);
    return;
  }
  abi::ProbeEntry& probe = area<abi::ProbeEntry>(h, h->probes)[probe_id];
  if (load_relaxed(&probe.enabled) == 0) return;

  abi::ThreadSlot* slot = nullptr;
  uint64_t* block = nullptr;
  if (h->features & abi::kFeatureFsGsBase) {
    const uint64_t fs_base = read_fs_base();
    if (fs_base != 0) slot = find_thread_slot(h, fs_base);
    if (slot != nullptr) block = thread_block(h, slot);
  }
  if (__builtin_expect(block == nullptr, 0)) {
    // The shared path: atomic counters, shared map tables, pooled scratch.
    fetch_add(&probe.shared_hits, uint64_t{1});
    count_event(&h->counters.fallback_hits);
    run_pooled(h, probe, regs, nullptr, nullptr);
    return;
  }

  local_add(&block[probe_id], 1);
  // Nesting: a signal handler interrupting us on this thread enters here with depth + 1 (or
  // with our depth if it came before our store: then it finishes with that level before we use
  // it). Both stores are single instructions on memory only this thread writes.
  const uint32_t depth = load_relaxed(&slot->depth);
  bytecode::VmState* state =
      __builtin_expect(depth < abi::kMaxNesting, 1) ? level_state(h, slot, depth) : nullptr;
  if (__builtin_expect(state == nullptr, 0)) {
    run_pooled(h, probe, regs, slot, block);
    return;
  }
  store_relaxed(&slot->depth, depth + 1);
  compiler_barrier();
  run_programs(h, probe, regs, slot, block, *state);
  compiler_barrier();
  store_relaxed(&slot->depth, depth);
}

}  // namespace dprobe::agent::blob

extern "C" void agent_dispatch(dprobe::abi::RegionHeader* region, uint32_t probe_id,
                               dprobe::abi::SavedRegisters* regs) {
  // The probed code may run with DF set (between std and cld); our code assumes it clear. The
  // trampoline restores rflags afterwards.
  __asm__ volatile("cld" ::: "memory");
  dprobe::agent::blob::dispatch_hit(region, probe_id, *regs);
}
