#include "probes/agent_engine.h"

#include <signal.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <array>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "agent/agent_blob.h"
#include "agent/hit_counts.h"
#include "agent/region_seed.h"
#include "agent/region_writer.h"
#include "arch/x86_64/jump_planner.h"
#include "arch/x86_64/relocator.h"
#include "process/auxv.h"
#include "runtime/probe_runtime.h"

namespace dprobe::probes {
namespace {

/// struct kernel_sigaction of rt_sigaction(2) on x86-64.
struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};
constexpr uint64_t kSaRestorer = 0x04000000;
constexpr uint64_t kHwcap2FsGsBase = 1u << 1;

pid_t any_thread(const process::Tracee& tracee) {
  auto threads = tracee.threads();
  return threads.empty() ? tracee.pid() : threads.front();
}

/// Installs the agent's SIGTRAP handler; returns the disposition it replaced.
Result<KernelSigaction> install_trap_handler(process::Tracee& tracee, pid_t tid, uint64_t handler,
                                             uint64_t restorer) {
  // SA_NODEFER: SIGTRAP stays unblocked while the handler runs. A signal handler that nests
  // inside it and hits a probe must trap again; the kernel kills a thread whose int3 raises a
  // blocked SIGTRAP (it resets the disposition to SIG_DFL).
  KernelSigaction act{handler, SA_SIGINFO | SA_ONSTACK | SA_NODEFER | kSaRestorer, restorer, 0};
  std::array<uint8_t, 2 * sizeof(KernelSigaction)> scratch{};
  std::memcpy(scratch.data(), &act, sizeof act);
  auto page = tracee.map_code(tid, scratch, PROT_READ | PROT_WRITE);
  if (!page) return std::unexpected(page.error());
  auto done = tracee.remote_syscall(
      tid, SYS_rt_sigaction, {SIGTRAP, *page, *page + sizeof(KernelSigaction), 8, 0, 0});
  KernelSigaction old{};
  Status read = tracee.read_memory(
      *page + sizeof(KernelSigaction),
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(&old), sizeof old));
  (void)tracee.unmap(tid, *page, 4096);
  if (!done) return std::unexpected(done.error());
  if (!read) return std::unexpected(read.error());
  return old;
}

// The agent may read a thread's identity with `mov rax, fs:[0]` (much cheaper than rdfsbase)
// only when every thread has its TLS set up: fs base non-zero and pointing at itself (the
// glibc/musl thread control block). Threads created later get their TLS before they run.
bool thread_pointers_valid(const process::Tracee& tracee) {
  auto threads = tracee.threads();
  if (threads.empty()) return false;
  for (pid_t tid : threads) {
    auto regs = tracee.get_registers(tid);
    if (!regs || regs->fs_base == 0) return false;
    uint64_t self = 0;
    if (!tracee.read_memory(regs->fs_base,
                            std::span<uint8_t>(reinterpret_cast<uint8_t*>(&self), sizeof self)) ||
        self != regs->fs_base) {
      return false;
    }
  }
  return true;
}

// abi::kFeatureTlsTid: every thread keeps its own tid at fs_base + kGlibcTlsTidOffset (glibc),
// with an fs base thread_key can combine with it. Checked on the threads there are; a C library
// that keeps the tid elsewhere fails the check on its first thread.
bool tls_tids_valid(const process::Tracee& tracee) {
  auto threads = tracee.threads();
  if (threads.empty()) return false;
  for (pid_t tid : threads) {
    auto regs = tracee.get_registers(tid);
    if (!regs) return false;
    uint32_t stored = 0;
    if (!tracee.read_memory(regs->fs_base + abi::kGlibcTlsTidOffset,
                            std::span<uint8_t>(reinterpret_cast<uint8_t*>(&stored), sizeof stored)) ||
        stored != static_cast<uint32_t>(tid) ||
        !abi::tls_tid_key_usable(regs->fs_base, stored)) {
      return false;
    }
  }
  return true;
}

/// What the patch at `site` covers, as the program had it.
std::vector<uint8_t> original_bytes(const ProbeSite& site) {
  if (site.mechanism != Mechanism::Jump) return {site.instruction.bytes[0]};
  std::vector<uint8_t> bytes;
  for (const auto& insn : site.replaced) {
    bytes.insert(bytes.end(), insn.bytes.begin(), insn.bytes.begin() + insn.length);
  }
  return bytes;
}

}  // namespace

AgentEngine::AgentEngine(const lang::CompiledScript& script, agent::RegionLayout layout,
                         agent::RegionOptions options)
    : script_(script), layout_(std::move(layout)), options_(options) {}

AgentEngine::~AgentEngine() {
  if (attached_runtime_ != nullptr) {
    attached_runtime_->set_external_maps(nullptr);
    attached_runtime_->stacks().set_source(nullptr);
  }
}

Result<std::unique_ptr<AgentEngine>> AgentEngine::place(process::Tracee& tracee,
                                                        const lang::CompiledScript& script,
                                                        uint32_t probe_count,
                                                        bool with_trap_handler) {
  const pid_t tid = any_thread(tracee);
  agent::RegionOptions options;
  probe_count = std::max<uint32_t>(probe_count, 1);
  options.probe_capacity = probe_count;
  options.ring_bytes = 16u << 20;  // ~100 ms of 10M events/s; poll() drains a busy ring at once
  // The region stays mapped in the target after dprobe leaves (trampolines may still point at
  // it): keep its address space modest. Pages are only committed when touched. Every thread
  // (of the process and of followed children) gets its own table per keyed map, at full
  // capacity (196 KiB for 4096 8-byte keys): 64 MiB hold about 300 such threads.
  options.arena_bytes = 64u << 20;
  auto hwcap2 = process::read_hwcap2(tracee.pid());
  if (hwcap2 && (*hwcap2 & kHwcap2FsGsBase) != 0) options.features |= abi::kFeatureFsGsBase;
  options.enabled = false;  // enabled once every probe entry is written (arm)
  options.start_ns = runtime::monotonic_now_ns(); // `elapsed` in the target counts from here
  options.zero_arena = false;  // a fresh memfd reads as zeros; writing them would commit it all
  if (thread_pointers_valid(tracee)) {
    options.features |= abi::kFeatureTlsSelfPointer;
    if (tls_tids_valid(tracee)) {
      options.features |= abi::kFeatureTlsTid;
      options.tls_tid_offset = abi::kGlibcTlsTidOffset;
    }
  }

  auto layout = agent::plan_region(script.module, probe_count, options);
  if (!layout) return with_context(layout.error(), "planning the agent's shared region");
  auto info = agent::agent_blob_info();
  if (!info) return std::unexpected(info.error());

  std::unique_ptr<AgentEngine> engine(new AgentEngine(script, *layout, options));
  auto region = tracee.map_shared_region(tid, layout->size);
  if (!region) return with_context(region.error(), "mapping the shared region");
  engine->region_ = std::move(*region);

  auto image = agent::agent_image_for(engine->region_->target_address);
  auto code = tracee.map_code(tid, image, PROT_READ | PROT_EXEC);
  if (!code) return with_context(code.error(), "placing the agent");
  engine->dispatch_ = *code + info->dispatch_offset;
  engine->code_start_ = *code;
  engine->code_size_ = image.size();

  if (with_trap_handler) {
    auto old = install_trap_handler(tracee, tid, *code + info->sigtrap_offset,
                                    *code + info->restorer_offset);
    if (!old) return with_context(old.error(), "installing the agent's SIGTRAP handler");
    engine->options_.sigtrap_prev_handler = old->handler;
    engine->options_.sigtrap_prev_flags = old->flags;
    engine->trap_handler_ = true;
  }
  return engine;
}

Status AgentEngine::prepare_jump(process::Tracee& tracee, pid_t tid, ProbeSite& site) {
  const std::string& name = site.probe_names.front();
  auto slot = slots_.allocate(tracee, tid, site.address,
                              x86_64::max_trampoline_size(site.replaced.size()));
  if (!slot) return with_context(slot.error(), name);
  x86_64::TrampolineSpec spec;
  spec.address = *slot;
  spec.probe_id = site.agent_probe_id;
  spec.region = region_->target_address;
  spec.dispatch = dispatch_;
  // At a function's entry the ABI leaves the status flags undefined: no need to restore them.
  spec.save_flags = site.function_offset != 0;
  spec.replaced = site.replaced;
  spec.run_before = site.run_before;
  if (site.run_before > 0) {
    // Only the exit's bytes were checked against the file when the site was resolved; the
    // instructions before it are replaced too (a jump a killed dprobe left there is ours).
    std::vector<uint8_t> live(original_bytes(site).size());
    if (auto st = tracee.read_memory(site.address, live); !st) return with_context(st.error(), name);
    const bool leftover = live[0] == 0xE9 && std::all_of(live.begin() + 5, live.end(),
                                                         [](uint8_t b) { return b == 0xCC; });
    if (live != original_bytes(site) && !leftover) {
      return fail("{}: code at {:#x} differs from the file", name, site.address);
    }
  }
  auto trampoline = x86_64::write_trampoline(spec);
  if (!trampoline) return fail("{}: {}", name, trampoline.error().message);
  if (auto st = tracee.write_memory(*slot, trampoline->code); !st) return with_context(st.error(), name);

  x86_64::JumpPlan plan;
  plan.replaced = site.replaced;
  for (const auto& insn : site.replaced) plan.length += insn.length;
  plan.at_function_entry = site.function_offset == 0;
  site.patch = x86_64::encode_jump_patch(plan, *slot);
  if (site.patch.empty()) return fail("{}: trampoline at {:#x} is out of jump range", name, *slot);
  site.slot_address = *slot;
  trampolines_[&site - sites_.data()] = std::move(*trampoline);
  return {};
}

Status AgentEngine::prepare_boost(process::Tracee& tracee, pid_t tid, ProbeSite& site) {
  const std::string& name = site.probe_names.front();
  auto slot = slots_.allocate(tracee, tid, site.address);
  if (!slot) return with_context(slot.error(), name);
  auto code = x86_64::relocate(site.instruction, *slot);
  if (!code) return fail("{}: {}", name, code.error().message);
  if (auto st = tracee.write_memory(*slot, code->code); !st) return with_context(st.error(), name);
  site.slot_address = *slot;
  site.slot = std::move(*code);
  site.patch = {0xCC};
  return {};
}

Status AgentEngine::move_threads_out_of(process::Tracee& tracee,
                                        const x86_64::Trampoline& trampoline) {
  for (pid_t tid : tracee.threads()) {
    auto regs = tracee.get_registers(tid);
    if (!regs) return std::unexpected(regs.error());
    const bool in_syscall = static_cast<int64_t>(regs->orig_rax) >= 0;
    auto moved = x86_64::relocated_pc(trampoline, regs->rip, in_syscall);
    if (!moved) return std::unexpected(moved.error());
    if (!*moved) continue;
    // This thread is stopped inside the bytes the jump replaces: it continues at the same
    // point of the relocated copy, which ends with a jump back.
    regs->rip = **moved;
    if (auto st = tracee.set_registers(tid, *regs); !st) return st;
  }
  return {};
}

Status AgentEngine::arm(process::Tracee& tracee, std::vector<ProbeSite> sites) {
  sites_.clear();
  trampolines_.clear();
  specs_.clear();
  ids_.clear();
  agent_maps_.assign(script_.module.maps.size(), false);
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  // Enabled before any probe entry exists: nothing can reach the agent until a site is patched.
  options_.enabled = true;
  if (auto st = agent::init_region(region, layout_, script_.module, {}, options_); !st) {
    return with_context(st.error(), "initialising the shared region");
  }
  auto reader = agent::RegionReader::create(region, layout_);
  if (!reader) return std::unexpected(reader.error());
  reader_.emplace(std::move(*reader));
  return add(tracee, std::move(sites));
}

uint32_t AgentEngine::free_probe_ids() const {
  return layout_.probe_capacity - static_cast<uint32_t>(specs_.size());
}

Status AgentEngine::add(process::Tracee& tracee, std::vector<ProbeSite> sites) {
  if (!reader_) return fail("agent: add() before arm()");
  const size_t first = sites_.size();
  const pid_t tid = any_thread(tracee);
  for (auto& site : sites) {
    auto key = std::make_pair(site.file_path, site.file_vaddr);
    auto known = ids_.find(key);
    if (known != ids_.end()) {
      site.agent_probe_id = known->second;
    } else {
      if (specs_.size() >= layout_.probe_capacity) {
        return fail("{}: no room left in the agent's probe table ({} entries)",
                    site.probe_names.front(), layout_.probe_capacity);
      }
      site.agent_probe_id = static_cast<uint32_t>(specs_.size());
      ids_.emplace(std::move(key), site.agent_probe_id);
      specs_.emplace_back();
    }
    sites_.push_back(std::move(site));
    trampolines_.emplace_back(std::nullopt);
  }
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  for (size_t i = first; i < sites_.size(); ++i) {
    ProbeSite& site = sites_[i];
    Status prepared = site.mechanism == Mechanism::Jump ? prepare_jump(tracee, tid, site)
                                                        : prepare_boost(tracee, tid, site);
    if (!prepared) return prepared;
    note_maps_named(site);
    agent::ProbeSpec& spec = specs_[site.agent_probe_id];
    spec.programs = site.programs;
    spec.address = site.address;
    spec.resume_address = site.mechanism == Mechanism::Int3Boost ? site.slot_address : 0;
    spec.ip = site.run_before > 0 ? site.exit_address : site.address;
    if (auto st = agent::write_probe(region, layout_, script_.module, site.agent_probe_id, spec);
        !st) {
      return with_context(st.error(), "writing the agent's probe table");
    }
  }
  if (auto st = agent::publish_trap_index(region, layout_, specs_); !st) {
    return with_context(st.error(), "writing the agent's trap index");
  }

  // All threads are stopped: none executes the bytes we rewrite.
  for (size_t i = first; i < sites_.size(); ++i) {
    ProbeSite& site = sites_[i];
    if (trampolines_[i]) {
      if (auto st = move_threads_out_of(tracee, *trampolines_[i]); !st) {
        (void)disarm(tracee);
        return with_context(st.error(), site.probe_names.front());
      }
    }
    if (auto st = tracee.write_memory(site.address, site.patch); !st) {
      (void)disarm(tracee);
      return with_context(st.error(), site.probe_names.front());
    }
    site.armed = true;
  }
  return {};
}

Status AgentEngine::add_trap_passthrough(uint64_t address, uint64_t resume_address) {
  if (!reader_ || !trap_handler_) return fail("agent: no SIGTRAP handler");
  auto key = std::make_pair(std::string("<trap passthrough>"), address);
  uint32_t id = 0;
  if (auto known = ids_.find(key); known != ids_.end()) {
    id = known->second;
  } else {
    if (specs_.size() >= layout_.probe_capacity) return fail("agent: probe table full");
    id = static_cast<uint32_t>(specs_.size());
    ids_.emplace(std::move(key), id);
    specs_.emplace_back();
  }
  agent::ProbeSpec& spec = specs_[id];
  spec.address = address;
  spec.resume_address = resume_address;
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  if (auto st = agent::write_probe(region, layout_, script_.module, id, spec); !st) return st;
  return agent::publish_trap_index(region, layout_, specs_);
}

namespace {
abi::LoaderHandshake& handshake(process::SharedMapping& region) {
  return static_cast<abi::RegionHeader*>(region.local)->loader;
}
}  // namespace

void AgentEngine::set_loader_handshake(uint64_t address, uint64_t state_address, pid_t pid) {
  if (!region_) return;
  abi::LoaderHandshake& hs = handshake(*region_);
  std::atomic_ref<uint64_t>(hs.state_address).store(state_address);
  std::atomic_ref<uint32_t>(hs.target_pid).store(static_cast<uint32_t>(pid));
  std::atomic_ref<uint32_t>(hs.controller_pid).store(static_cast<uint32_t>(::getpid()));
  std::atomic_ref<uint64_t>(hs.address).store(address, std::memory_order_release);
  if (address == 0) {
    ::syscall(SYS_futex, &hs.answers, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  }
}

uint32_t AgentEngine::loader_requests() const {
  if (!region_) return 0;
  return std::atomic_ref<uint32_t>(handshake(*region_).requests).load(std::memory_order_acquire);
}

void AgentEngine::wait_loader_request(uint32_t seen, int timeout_ms) const {
  if (!region_) return;
  timespec timeout{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1'000'000L};
  // EAGAIN (changed already), EINTR and ETIMEDOUT all mean: look again.
  ::syscall(SYS_futex, &handshake(*region_).requests, FUTEX_WAIT, seen, &timeout, nullptr, 0);
}

void AgentEngine::answer_loader(uint32_t requests) {
  if (!region_) return;
  abi::LoaderHandshake& hs = handshake(*region_);
  std::atomic_ref<uint32_t>(hs.answers).store(requests, std::memory_order_release);
  ::syscall(SYS_futex, &hs.answers, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

size_t AgentEngine::forget_unmapped(std::span<const process::Mapping> maps) {
  if (!reader_) return 0;
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  size_t forgotten = 0;
  for (size_t i = 0; i < sites_.size();) {
    const ProbeSite& site = sites_[i];
    const bool mapped = std::any_of(maps.begin(), maps.end(), [&](const process::Mapping& m) {
      return m.contains(site.address) && m.executable && m.path == site.file_path;
    });
    if (mapped || !site.armed) {
      ++i;
      continue;
    }
    // The id keeps its programs (collect() counts its hits) but no address: no int3 can lead to
    // it any more, and no trampoline is reachable from unmapped code.
    specs_[site.agent_probe_id].address = 0;
    specs_[site.agent_probe_id].resume_address = 0;
    (void)agent::set_probe_enabled(region, layout_, site.agent_probe_id, false);
    sites_.erase(sites_.begin() + static_cast<std::ptrdiff_t>(i));
    trampolines_.erase(trampolines_.begin() + static_cast<std::ptrdiff_t>(i));
    ++forgotten;
  }
  if (forgotten != 0) (void)agent::publish_trap_index(region, layout_, specs_);
  return forgotten;
}

void AgentEngine::share_maps(runtime::ProbeRuntime& runtime) {
  if (!reader_ || collected_) return;
  runtime.set_external_maps(&region_maps_);
  agent::set_cpid(std::span<uint8_t>(static_cast<uint8_t*>(region_->local), region_->length),
                  layout_, runtime.cpid());
  // A stack recorded after poll() read the table, by the hit whose event poll() prints now.
  runtime.stacks().set_source([this, &runtime] { harvest_stacks(runtime); });
  attached_runtime_ = &runtime;
}

void AgentEngine::seed_maps(runtime::ProbeRuntime& runtime) {
  if (!reader_ || collected_) return;
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  for (uint32_t map = 0; map < layout_.maps.size() && map < script_.module.maps.size(); ++map) {
    // Sharded maps are never read by a hit, and merge with the runtime's entries at the end;
    // maps no probe in the target names stay with the runtime.
    if (layout_.maps[map].mode != abi::kMapShared || map >= agent_maps_.size() ||
        !agent_maps_[map] ||
        script_.module.maps[map].value == bytecode::MapValueKind::String) {
      continue;
    }
    for (const output::MapEntry& entry : runtime.take_entries(map)) {
      std::vector<uint64_t> words{entry.value};
      words.insert(words.end(), entry.rest.begin(), entry.rest.end());
      if (!agent::seed_shared_entry(region, layout_, map, entry.key, words)) {
        (void)runtime.merge_map_entry(map, entry.key, words);
      }
    }
  }
}

void AgentEngine::note_maps_named(const ProbeSite& site) {
  for (uint32_t program : site.programs) {
    if (program >= script_.module.programs.size()) continue;
    for (const bytecode::Insn& insn : script_.module.programs[program].code) {
      const bool names_map = insn.op == bytecode::Op::MapLookup ||
                             insn.op == bytecode::Op::MapUpdate ||
                             insn.op == bytecode::Op::MapDelete ||
                             insn.op == bytecode::Op::MapCommand;
      if (names_map && insn.aux < agent_maps_.size()) agent_maps_[insn.aux] = true;
    }
  }
}

uint64_t AgentEngine::hit_counted_value(uint32_t map) {
  if (!reader_ || map >= layout_.maps.size() || !layout_.maps[map].hit_counted) return 0;
  const std::vector<uint64_t> counted =
      agent::hit_counted_values(*reader_, script_.module, specs_);
  return map < counted.size() ? counted[map] : 0;
}

void AgentEngine::publish_unwind(const stacks::ProcessUnwindTables& tables) {
  if (!region_) return;
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  (void)agent::publish_unwind_tables(region, layout_, tables.modules(), tables.rows());
}

void AgentEngine::harvest_stacks(runtime::ProbeRuntime& runtime) {
  if (!reader_) return;
  reader_->visit_new_stacks([&runtime](uint64_t id, uint32_t pid, std::span<const uint64_t> frames) {
    runtime.stacks().add(id, pid, frames);
  });
}

std::vector<output::MapEntry> AgentEngine::region_entries(uint32_t map) {
  if (!reader_) return {};
  if (attached_runtime_ != nullptr) harvest_stacks(*attached_runtime_);
  std::vector<output::MapEntry> entries = reader_->map_entries(map);
  // A hit-counted map is keyless and has no table entry: its hits are its one value.
  if (const uint64_t hits = hit_counted_value(map); hits != 0) {
    if (entries.empty()) {
      entries.emplace_back(std::string(), hits);
    } else {
      entries.front().value += hits;
    }
  }
  return entries;
}

bool AgentEngine::region_lookup(uint32_t map, std::string_view key, std::vector<uint64_t>& words) {
  // A map no probe in the target names has nothing there (seeded maps are read by probes).
  if (!reader_ || map >= agent_maps_.size() || !agent_maps_[map]) return false;
  bool found = reader_->lookup(map, key, words);
  if (const uint64_t hits = hit_counted_value(map); hits != 0 && key.empty()) {
    if (!found) words.assign(1, 0);
    words.front() += hits;
    found = true;
  }
  return found;
}

void AgentEngine::poll(runtime::ProbeRuntime& runtime) {
  if (!reader_) return;
  // Stacks before events: an event naming a stack was emitted after its stack was recorded.
  harvest_stacks(runtime);
  // Each event goes from the ring straight into the runtime's output buffer (no allocation per
  // event). Batches bound the time between tail updates, so producers see room sooner.
  struct Sink {
    runtime::ProbeRuntime* runtime;
    agent::RegionReader* reader;
  } sink{&runtime, &*reader_};
  const auto emit = [](void* context, uint32_t format, std::span<const uint8_t> args) {
    static_cast<Sink*>(context)->runtime->emit_printf(format, args);
  };
  // A probe's print(@m) shows the agent's tables merged with what the controller holds
  // (BEGIN's updates); its clear() and zero() already reset the agent's tables, dprobe follows.
  const auto command = [](void* context, uint32_t map, uint32_t kind) {
    static_cast<Sink*>(context)->runtime->map_command(
        map, kind,
        bytecode::map_command_kind(kind) == static_cast<uint32_t>(bytecode::MapCommandKind::Print));
  };
  share_maps(runtime);
  // A busy ring is drained again at once (after a yield) instead of after the caller's next
  // wait, for up to kBusyBudget: at 10M+ events/s the 10 ms wait alone fills a sixth of it.
  constexpr size_t kBusyEvents = 2048;
  constexpr auto kBusyBudget = std::chrono::milliseconds(50);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    size_t drained = 0;
    while (size_t n = reader_->visit_events(emit, &sink, 16384, command)) drained += n;
    if (drained < kBusyEvents || std::chrono::steady_clock::now() - start > kBusyBudget) break;
    if (reader_->exit_requested()) break;
    std::this_thread::yield();
  }
  runtime.flush();
  if (reader_->exit_requested()) runtime.request_exit();
}

bool AgentEngine::inside_hit(uint64_t pc) const {
  if (pc >= code_start_ && pc < code_start_ + code_size_) return true;
  for (size_t i = 0; i < trampolines_.size(); ++i) {
    if (trampolines_[i] && pc >= sites_[i].slot_address && pc < trampolines_[i]->dispatch_return) {
      return true;
    }
  }
  return false;
}

Status AgentEngine::finish_hits_in_progress(process::Tracee& tracee) {
  for (int round = 0; round < 100; ++round) {
    std::vector<pid_t> busy;
    for (pid_t tid : tracee.threads()) {
      auto regs = tracee.get_registers(tid);
      if (regs && inside_hit(regs->rip)) busy.push_back(tid);
    }
    if (busy.empty()) return {};
    // Only these threads run, briefly: the agent's hit path is short and never blocks.
    for (pid_t tid : busy) {
      if (auto st = tracee.resume(tid); !st) return st;
    }
    ::usleep(100);
    if (auto st = tracee.stop_all(); !st) return st;
  }
  return fail("threads stayed inside the agent: the last hits may be partly counted");
}

Status AgentEngine::disarm(process::Tracee& tracee) {
  Status result;
  for (auto& site : sites_) {
    if (!site.armed) continue;
    // Whole original instructions go back. A thread already inside a trampoline or slot runs
    // on through the relocated copy and jumps back; one holding a SIGTRAP from an int3 not yet
    // handled still finds its probe in the agent's trap index and resumes in the slot.
    if (auto st = tracee.write_memory(site.address, original_bytes(site)); !st && result) {
      result = st;
    }
    site.armed = false;
  }
  // Only now, with no way into a trampoline left, can threads caught in the middle of a hit be
  // let finish it: before, a thread in a loop would finish one hit and start the next.
  // Best effort: if one cannot be brought out, its last hit may be partly counted.
  (void)finish_hits_in_progress(tracee);
  return result;
}

void AgentEngine::collect(runtime::ProbeRuntime& runtime, std::FILE* diagnostics) {
  if (!reader_) return;
  poll(runtime);
  // From here on the runtime holds every entry: the region's are merged into it below.
  runtime.set_external_maps(nullptr);
  runtime.stacks().set_source(nullptr);
  attached_runtime_ = nullptr;
  collected_ = true;
  for (uint32_t map = 0; map < layout_.map_count; ++map) {
    for (const auto& entry : reader_->map_entries(map)) {
      std::vector<uint64_t> words{entry.value};
      words.insert(words.end(), entry.rest.begin(), entry.rest.end());
      runtime.merge_map_entry(map, entry.key, words);
    }
  }
  // Hits of probes that count a map by their hit counter are that map's value (hit_counts.h),
  // including those of sites forgotten since (a library dlclose'd).
  const std::vector<uint64_t> counted =
      agent::hit_counted_values(*reader_, script_.module, specs_);
  for (uint32_t map = 0; map < counted.size(); ++map) {
    if (counted[map] != 0) runtime.merge_map_entry(map, {}, counted[map]);
  }
  const abi::RegionCounters counters = reader_->counters();
  if (counters.dropped_events != 0) {
    fmt::print(diagnostics, "dprobe: {} printf events lost (ring buffer full)\n",
               counters.dropped_events);
  }
  if (counters.dropped_map_updates != 0) {
    fmt::print(diagnostics, "dprobe: {} map updates lost (map full)\n", counters.dropped_map_updates);
  }
  if (counters.dropped_hits != 0) {
    fmt::print(diagnostics, "dprobe: {} hits not run (no scratch space free)\n",
               counters.dropped_hits);
  }
  if (counters.dropped_stacks != 0) {
    fmt::print(diagnostics, "dprobe: {} stacks not recorded (stack table full): shown as "
                            "[unknown]\n",
               counters.dropped_stacks);
  }
  if (counters.vm_errors != 0) {
    fmt::print(diagnostics, "dprobe: {} probe runs stopped by the VM (last: {})\n",
               counters.vm_errors,
               bytecode::vm_status_name(static_cast<bytecode::VmStatus>(counters.last_vm_status)));
  }
  // Nothing reads the region any more: hits in threads still inside a trampoline run nothing.
  std::span<uint8_t> region(static_cast<uint8_t*>(region_->local), region_->length);
  agent::set_enabled(region, layout_, false);
  release_region_memory();
}

void AgentEngine::release_region_memory() {
  // The region stays mapped in the target (inert trampolines still name it), but its big areas
  // are only written while enabled: give their pages back, so sessions that come and go on one
  // process do not pile up memory. The header, probe table and trap index stay, for a thread
  // that still takes a pending SIGTRAP into the agent's handler. A hit that passed the
  // enabled check just before it was cleared gets a moment to finish first.
  ::usleep(10'000);
  auto* base = static_cast<uint8_t*>(region_->local);
  for (const abi::AreaRef& area : {layout_.ring, layout_.arena, layout_.scratch}) {
    const uint64_t page = 4096;
    uint64_t start = (area.offset + page - 1) & ~(page - 1);
    uint64_t end = (area.offset + area.size) & ~(page - 1);
    if (end > start && end <= region_->length) ::madvise(base + start, end - start, MADV_REMOVE);
  }
}

Status AgentEngine::clean_fork_child(process::Tracee& tracee, pid_t child) {
  for (const auto& site : sites_) {
    if (!site.armed) continue;
    if (auto st = tracee.write_memory_of(child, site.address, original_bytes(site)); !st) return st;
  }
  return {};
}

bool AgentEngine::follows_children() const {
  return (options_.features & abi::kFeatureTlsTid) != 0;
}

Status AgentEngine::release_child(process::Tracee& child) {
  Status result;
  for (const auto& site : sites_) {
    if (!site.armed) continue;
    if (auto st = child.write_memory(site.address, original_bytes(site)); !st && result) result = st;
  }
  (void)finish_hits_in_progress(child);
  return result;
}

std::string AgentEngine::describe() const {
  const char* identity = (options_.features & abi::kFeatureTlsTid) != 0
                             ? "the TLS self-pointer (fs:0) and the tid glibc keeps in the TLS"
                         : (options_.features & abi::kFeatureTlsSelfPointer) != 0
                             ? "the TLS self-pointer (fs:0)"
                             : (options_.features & abi::kFeatureFsGsBase) != 0
                                   ? "rdfsbase"
                                   : "none: every hit takes the shared, atomic path";
  return fmt::format("agent: region at {:#x} ({} bytes), thread identity by {}",
                     region_ ? region_->target_address : 0, layout_.size, identity);
}

uint64_t AgentEngine::hits(const ProbeSite& site) {
  return reader_ ? reader_->probe_hits(site.agent_probe_id) : 0;
}

}  // namespace dprobe::probes
