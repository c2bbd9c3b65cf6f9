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
  uint64_t* block; ///< the thread block, null on the shared path
  uint64_t pid;    ///< 0 when not fetched
  const bytecode::VmContext* context;
  uint8_t* scratch; ///< the running program's unused frame bytes (ustack reads ahead there)
  uint64_t scratch_size;
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

/// clear() and zero() happen here, at once; print() (and the controller's copy of the first
/// two) go through the ring, so print shows the map when dprobe reads the record.
void host_map_command(void* ctx, uint32_t map_id, uint32_t command) {
  auto* env = static_cast<HitEnv*>(ctx);
  const uint32_t kind = bytecode::map_command_kind(command);
  if (kind != static_cast<uint32_t>(bytecode::MapCommandKind::Print)) {
    map_reset(env->h, map_id, kind == static_cast<uint32_t>(bytecode::MapCommandKind::Zero));
  }
  ring_emit_map_command(env->h, map_id, command);
}

uint64_t host_stack_id(void* ctx, uint32_t max_frames, uint32_t skip) {
  auto* env = static_cast<HitEnv*>(ctx);
  if (env->pid == 0) env->pid = static_cast<uint64_t>(syscall0(kSysGetpid));
  using bytecode::CtxReg;
  const uint64_t* r = env->context->regs;
  const abi::StackStart start{r[static_cast<uint32_t>(CtxReg::Rip)],
                              r[static_cast<uint32_t>(CtxReg::Rsp)],
                              r[static_cast<uint32_t>(CtxReg::Rbp)]};
  return capture_stack(env->h, static_cast<uint32_t>(env->pid), start, max_frames, skip,
                       env->scratch, env->scratch_size);
}

void host_exit(void* ctx) {
  auto* env = static_cast<HitEnv*>(ctx);
  store_release(&env->h->exit_requested, uint32_t{1});
}

void record_vm_error(RegionHeader* h, bytecode::VmStatus status) {
  count_event(&h->counters.vm_errors);
  store_relaxed(&h->counters.last_vm_status, static_cast<uint64_t>(status));
}

/// reg("name") and the stack arguments: every register as the probed instruction sees it.
void fill_registers(const abi::ProbeEntry& probe, const abi::SavedRegisters& regs,
                    bytecode::VmContext& context) {
  using bytecode::CtxReg;
  uint64_t* r = context.regs;
  r[static_cast<uint32_t>(CtxReg::R15)] = regs.r15;
  r[static_cast<uint32_t>(CtxReg::R14)] = regs.r14;
  r[static_cast<uint32_t>(CtxReg::R13)] = regs.r13;
  r[static_cast<uint32_t>(CtxReg::R12)] = regs.r12;
  r[static_cast<uint32_t>(CtxReg::Rbp)] = regs.rbp;
  r[static_cast<uint32_t>(CtxReg::Rbx)] = regs.rbx;
  r[static_cast<uint32_t>(CtxReg::R11)] = regs.r11;
  r[static_cast<uint32_t>(CtxReg::R10)] = regs.r10;
  r[static_cast<uint32_t>(CtxReg::R9)] = regs.r9;
  r[static_cast<uint32_t>(CtxReg::R8)] = regs.r8;
  r[static_cast<uint32_t>(CtxReg::Rax)] = regs.rax;
  r[static_cast<uint32_t>(CtxReg::Rcx)] = regs.rcx;
  r[static_cast<uint32_t>(CtxReg::Rdx)] = regs.rdx;
  r[static_cast<uint32_t>(CtxReg::Rsi)] = regs.rsi;
  r[static_cast<uint32_t>(CtxReg::Rdi)] = regs.rdi;
  r[static_cast<uint32_t>(CtxReg::Rip)] = probe.ip;
  r[static_cast<uint32_t>(CtxReg::Rflags)] = regs.rflags;
  // An int3 site's hit comes from the SIGTRAP handler with the interrupted rsp after the
  // registers; a trampoline's frame sits just below the probed code's red zone.
  r[static_cast<uint32_t>(CtxReg::Rsp)] =
      probe.resume_address != 0
          ? reinterpret_cast<const TrapRegisters&>(regs).rsp
          : reinterpret_cast<uint64_t>(&regs) + sizeof(abi::SavedRegisters) + abi::kRedZoneSize;
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
  context.uid = 0;
  context.gid = 0;
  context.cpu = 0;
  context.elapsed = 0;
  context.cpid = load_relaxed(&h->cpid);
  for (char& c : context.comm)
    c = 0;
  fill_registers(probe, regs, context);
  const uint32_t flags = probe.context_flags;
  if (__builtin_expect(flags != 0, 0)) {
    fill_identity(slot, flags, context);
    if (flags & abi::kNeedsNsecs) {
      context.nsecs = monotonic_ns(h);
      const uint64_t start = h->start_ns;
      context.elapsed = context.nsecs > start ? context.nsecs - start : 0;
    }
  }
}

/// Runs the probe's programs through the VM.
void run_programs(RegionHeader* h, const abi::ProbeEntry& probe, const abi::SavedRegisters& regs,
                  abi::ThreadSlot* slot, uint64_t* block, bytecode::VmState& state) {
  const auto* programs = area<const abi::ProgramDesc>(h, h->programs);
  const auto* code = area<const bytecode::Insn>(h, h->code);
  uint32_t count = probe.program_count;
  if (count > abi::kMaxProgramsPerProbe) count = abi::kMaxProgramsPerProbe;
  bytecode::VmContext context;
  fill_context(h, probe, regs, slot, context);
  HitEnv env{h, block, context.pid, &context, nullptr, 0};
  const bytecode::VmHost host{&env,         &host_read,   &host_lookup,      &host_update,
                              &host_delete, &host_printf, &host_exit,        &host_map_command,
                              &host_stack_id};
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t index = probe.programs[i];
    if (__builtin_expect(index >= h->program_count, 0)) {
      record_vm_error(h, bytecode::VmStatus::BadProgram);
      continue;
    }
    // ProgramDescs were checked by ensure_prepared.
    const abi::ProgramDesc& desc = programs[index];
    const bytecode::VmProgram program{code + desc.code_offset, desc.length, desc.frame_size};
    // Programs never touch their frame past frame_size (the VM checks every access).
    const uint64_t used = (uint64_t{desc.frame_size} + 7) & ~uint64_t{7};
    env.scratch = used < bytecode::kMaxFrameSize ? state.frame + used : nullptr;
    env.scratch_size = used < bytecode::kMaxFrameSize ? bytecode::kMaxFrameSize - used : 0;
    const bytecode::VmStatus status =
        bytecode::vm_run(program, prepared_module(h), context, host, state);
    if (__builtin_expect(status != bytecode::VmStatus::Ok, 0) &&
        status != bytecode::VmStatus::Exited) {
      record_vm_error(h, status);
    }
  }
}

/// The table kFastCount/kFastCountByArg update: this thread's table of the probe's map, when
/// the hint is usable and the table exists; null otherwise.
__attribute__((always_inline)) inline uint8_t* fast_entries(RegionHeader* h,
                                                            const abi::ProbeEntry& probe,
                                                            uint64_t* block,
                                                            const abi::MapDesc** desc_out) {
  const uint32_t map = probe.fast_map;
  if (map >= h->map_count) return nullptr;
  const abi::MapDesc& desc = area<const abi::MapDesc>(h, h->map_descs)[map];
  const uint64_t table = block[h->probe_capacity + map];
  if (table == 0 || desc.mode != abi::kMapSharded) return nullptr;
  *desc_out = &desc;
  return region_base(h) + table + sizeof(abi::MapTableHeader);
}

/// kFastCount (`@m = count()`), when this thread's entry exists: false sends the hit on to
/// finish_hit. Inline in dispatch_hit, so the common count costs no call and no saved register.
/// Reads only what a hit already touched or this thread's own table, and checks what the
/// controller's hint names.
__attribute__((always_inline)) inline bool run_fast_count(RegionHeader* h,
                                                          const abi::ProbeEntry& probe,
                                                          uint64_t* block) {
  if (load_relaxed(&probe.fast) != abi::kFastCount) return false;
  const abi::MapDesc* desc = nullptr;
  uint8_t* entries = fast_entries(h, probe, block, &desc);
  if (entries == nullptr) return false;
  // A map without keys has one entry, the first.
  auto* e = reinterpret_cast<abi::MapTableEntry*>(entries);
  if (desc->key_size != 0 || desc->capacity != 1 || load_relaxed(&e->state) != abi::kEntryLive) {
    return false;
  }
  local_add(&e->value, 1);
  return true;
}

/// kFastCountByArg (`@m[argN] = count()`), when this thread's entry for the key exists; false
/// sends the hit to the interpreter, which creates it.
bool run_fast_by_arg(RegionHeader* h, const abi::ProbeEntry& probe,
                     const abi::SavedRegisters& regs, uint64_t* block) {
  if (load_relaxed(&probe.fast) != abi::kFastCountByArg) return false;
  const abi::MapDesc* desc = nullptr;
  uint8_t* entries = fast_entries(h, probe, block, &desc);
  if (entries == nullptr || desc->key_size != 8) return false;
  const uint64_t key = saved_argument(regs, probe.fast_arg);
  const uint32_t hash = hash_key(reinterpret_cast<const uint8_t*>(&key), 8);
  const uint32_t mask = desc->capacity - 1;
  constexpr uint64_t kStride = abi::map_entry_stride(8);
  uint32_t i = hash & mask;
  for (uint32_t n = 0;; ++n, i = (i + 1) & mask) {
    if (n > mask) return false;
    auto* e = reinterpret_cast<abi::MapTableEntry*>(entries + i * kStride);
    const uint32_t state = load_relaxed(&e->state);
    if (state == abi::kEntryLive) {
      if (e->hash == hash && load_unaligned(reinterpret_cast<uint8_t*>(e + 1)) == key) {
        local_add(&e->value, 1);
        return true;
      }
    } else if (state != abi::kEntryDeleted) {
      return false; // absent, or being inserted: the VM decides
    }
  }
}

inline uint64_t read_fs_base() {
  uint64_t base;
  __asm__ volatile("rdfsbase %0" : "=r"(base));
  return base;
}

/// The TLS ABI's self pointer: only under kFeatureTlsSelfPointer (faults when fs base is 0).
inline uint64_t read_tls_self() {
  uint64_t base;
  __asm__ volatile("movq %%fs:0, %0" : "=r"(base));
  return base;
}

/// The C library's copy of the thread's tid (kFeatureTlsTid: fs base known to be valid).
inline uint32_t read_tls_tid(uint32_t offset) {
  uint32_t tid;
  __asm__ volatile("movl %%fs:(%1), %0" : "=r"(tid) : "r"(static_cast<uint64_t>(offset)));
  return tid;
}

/// The calling thread's slot key (abi::thread_key, or its fs base), 0 when there is none.
uint64_t thread_identity(RegionHeader* h) {
  const uint32_t features = h->features;
  if (features & abi::kFeatureTlsSelfPointer) {
    const uint64_t self = read_tls_self();
    // Where rdfsbase works, check the controller's claim for this thread once more (this is the
    // slow path): a runtime whose first TLS word is something else gets no slot.
    if ((features & abi::kFeatureFsGsBase) && read_fs_base() != self) return 0;
    if (self == 0 || !(features & abi::kFeatureTlsTid)) return self;
    const uint32_t tid = read_tls_tid(h->tls_tid_offset);
    // A thread whose key could equal another's gets no slot (the shared path is exact).
    return abi::tls_tid_key_usable(self, tid) ? abi::thread_key(self, tid) : 0;
  }
  if (features & abi::kFeatureFsGsBase) return read_fs_base();
  return 0;
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

/// The rest of a hit already counted in the thread's block: the interpreter, on this thread's
/// scratch for its nesting level.
__attribute__((noinline)) void continue_hit(RegionHeader* h, const abi::ProbeEntry& probe,
                                            const abi::SavedRegisters& regs, abi::ThreadSlot* slot,
                                            uint64_t* block) {
  __asm__ volatile("cld" ::: "memory"); // see agent_dispatch
  if (ring_printf_fast(h, probe, regs)) return; // printf of arguments only: no VM (ring.cpp)
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

/// The rest of a hit already counted in the thread's block that kFastCount did not take.
__attribute__((noinline)) void finish_hit(RegionHeader* h, const abi::ProbeEntry& probe,
                                          const abi::SavedRegisters& regs, abi::ThreadSlot* slot,
                                          uint64_t* block) {
  if (!run_fast_by_arg(h, probe, regs, block)) continue_hit(h, probe, regs, slot, block);
}

/// A hit the inline path could not take: first hit of the region or of this thread, no
/// thread identity, bad probe id.
__attribute__((noinline)) void slow_hit(RegionHeader* h, uint32_t probe_id,
                                        const abi::SavedRegisters& regs) {
  __asm__ volatile("cld" ::: "memory"); // see agent_dispatch
  if (load_acquire(&h->module_state) != abi::kModuleReady && !ensure_prepared(h)) {
    count_event(&h->counters.invalid_region);
    return;
  }
  if (probe_id >= h->probe_capacity) {
    count_event(&h->counters.bad_probe_ids);
    return;
  }
  abi::ProbeEntry& probe = area<abi::ProbeEntry>(h, h->probes)[probe_id];
  if (load_relaxed(&probe.enabled) == 0) return;
  abi::ThreadSlot* slot = nullptr;
  uint64_t* block = nullptr;
  const uint64_t key = thread_identity(h);
  if (key != 0) slot = find_thread_slot(h, key);
  if (slot != nullptr) block = thread_block(h, slot);
  if (block == nullptr) {
    // The shared path: atomic counters, shared map tables, pooled scratch.
    fetch_add(&probe.shared_hits, uint64_t{1});
    count_event(&h->counters.fallback_hits);
    if (load_relaxed(&probe.fast) != abi::kFastHitCount) {
      run_pooled(h, probe, regs, nullptr, nullptr);
    }
    return;
  }
  local_add(&block[probe_id], 1);
  if (load_relaxed(&probe.fast) == abi::kFastHitCount) return; // the hit counter is the count
  if (!run_fast_count(h, probe, block)) finish_hit(h, probe, regs, slot, block);
}

} // namespace

void dispatch_hit(RegionHeader* h, uint32_t probe_id, const abi::SavedRegisters& regs) {
  if (load_acquire(&h->enabled) == 0) return;
  // After exit() no probe program runs any more, as if tracing had already stopped (the
  // controller notices the flag within one poll).
  if (load_relaxed(&h->exit_requested) != 0) return;
  // The common case, inline and free of calls: a prepared region, a known thread whose slot
  // sits where its fs base hashes to, programs on the fast path. Anything else: slow_hit.
  const uint32_t features = h->features;
  if (__builtin_expect(
          load_acquire(&h->module_state) != abi::kModuleReady || probe_id >= h->probe_capacity ||
              (features & (abi::kFeatureFsGsBase | abi::kFeatureTlsSelfPointer)) == 0 ||
              h->thread_slot_count == 0,
          0)) {
    slow_hit(h, probe_id, regs);
    return;
  }
  abi::ProbeEntry& probe = area<abi::ProbeEntry>(h, h->probes)[probe_id];
  if (load_relaxed(&probe.enabled) == 0) return;
  uint64_t key = (features & abi::kFeatureTlsSelfPointer) ? read_tls_self() : read_fs_base();
  // Only with kFeatureTlsSelfPointer, which guarantees a TLS block to read the tid from.
  constexpr uint32_t kTidKey = abi::kFeatureTlsTid | abi::kFeatureTlsSelfPointer;
  if ((features & kTidKey) == kTidKey) key = abi::thread_key(key, read_tls_tid(h->tls_tid_offset));
  abi::ThreadSlot* slot =
      area<abi::ThreadSlot>(h, h->thread_slots) + thread_slot_index(key, h->thread_slot_count);
  const uint64_t block_offset = load_relaxed(&slot->block);
  // A key of 0 (no fs base yet) matches free slots: the slow path sorts it out.
  if (__builtin_expect(key == 0 || load_relaxed(&slot->key) != key || block_offset == 0, 0)) {
    slow_hit(h, probe_id, regs);
    return;
  }
  uint64_t* block = at_offset<uint64_t>(h, block_offset);
  local_add(&block[probe_id], 1);
  if (__builtin_expect(load_relaxed(&probe.fast) == abi::kFastHitCount, 1)) return;
  if (__builtin_expect(!run_fast_count(h, probe, block), 0)) {
    finish_hit(h, probe, regs, slot, block);
  }
}

} // namespace dprobe::agent::blob

extern "C" void agent_dispatch(dprobe::abi::RegionHeader* region, uint32_t probe_id,
                               dprobe::abi::SavedRegisters* regs) {
  // The probed code may run with DF set (between std and cld), and compiled code assumes it
  // clear once it uses string instructions. The inline path of dispatch_hit uses none (it copies
  // and fills nothing), so only slow_hit and continue_hit pay for a cld; the trampoline restores
  // rflags afterwards.
  dprobe::agent::blob::dispatch_hit(region, probe_id, *regs);
}
