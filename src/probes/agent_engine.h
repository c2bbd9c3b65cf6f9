// patch -> hits for the in-target mechanisms: jump (trampoline -> agent) and int3-boost (the
// agent's SIGTRAP handler). Hits run inside the target; dprobe only reads the shared region.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <optional>
#include <string_view>
#include <vector>

#include "agent/region_layout.h"
#include "agent/region_reader.h"
#include "agent/region_writer.h"
#include "arch/x86_64/trampoline_writer.h"
#include "common/result.h"
#include "lang/compiler.h"
#include "probes/probe_site.h"
#include "probes/xol_area.h"
#include "process/tracee.h"
#include "runtime/probe_runtime.h"
#include "stacks/unwind_tables.h"

namespace dprobe::probes {

class AgentEngine {
 public:
  /// Maps the shared region and the agent's code into the process, and installs the agent's
  /// SIGTRAP handler when `with_trap_handler`. Precondition: all threads are stopped.
  [[nodiscard]] static Result<std::unique_ptr<AgentEngine>> place(process::Tracee& tracee,
                                                                  const lang::CompiledScript& script,
                                                                  uint32_t probe_count,
                                                                  bool with_trap_handler);
  ~AgentEngine();

  /// Writes trampolines and boosted copies, fills the region, then patches every site, moving
  /// threads stopped inside replaced bytes into the copies. Precondition: all threads stopped.
  [[nodiscard]] Status arm(process::Tracee& tracee, std::vector<ProbeSite> sites);

  /// Arms more sites in an armed engine (a library the loader just mapped): new entries in the
  /// probe table, whose capacity place() planned. A site already armed once at the same place in
  /// its file (the library loaded again after dlclose) gets its old probe id back, so its hits
  /// add up across loads and the table never fills with reloads. Precondition: all threads
  /// stopped.
  [[nodiscard]] Status add(process::Tracee& tracee, std::vector<ProbeSite> sites);

  /// Forgets the armed sites whose code is no longer mapped executable at their address (a
  /// library dlclose'd): their probe entries are disabled and leave the trap index; nothing is
  /// written to the target, whose pages are gone. Their trampolines stay, inert. Returns how many.
  size_t forget_unmapped(std::span<const process::Mapping> maps);

  /// Lets the agent's SIGTRAP handler serve an int3 that dprobe placed and handles through
  /// ptrace (the loader's rendezvous breakpoint): an entry with no programs whose hit resumes at
  /// `resume_address`. While dprobe traces the process the trap never reaches the handler; if
  /// dprobe dies (kill -9) the process goes on instead of dying of SIGTRAP. Takes one probe id.
  [[nodiscard]] Status add_trap_passthrough(uint64_t address, uint64_t resume_address);

  /// Probe ids still free for add().
  [[nodiscard]] uint32_t free_probe_ids() const;

  /// ustack: gives the agent the unwind modules of `tables` it does not have yet.
  void publish_unwind(const stacks::ProcessUnwindTables& tables);
  /// ustack: moves the stacks the agent recorded since the last call into the runtime's store.
  void harvest_stacks(runtime::ProbeRuntime& runtime);

  /// Prints the printf events waiting in the ring (and runs the print/clear/zero records);
  /// notes the script's exit().
  void poll(runtime::ProbeRuntime& runtime);

  /// Lets print/clear/zero in the runtime's own programs (BEGIN, END, interval) see the
  /// region's maps, until collect(). poll() does it too; call it before BEGIN runs.
  void share_maps(runtime::ProbeRuntime& runtime);

  /// Moves what the runtime's programs (BEGIN) stored in maps the probes read into the region,
  /// where those reads look (the maps' shared tables): `BEGIN { @x = 5 } ... { @x = @x + 1 }`
  /// counts from 5, as in bpftrace. Entries that do not fit stay in the runtime. Call after
  /// BEGIN, before the threads run.
  void seed_maps(runtime::ProbeRuntime& runtime);

  /// Restores every original byte. Trampolines, slots, the agent and its SIGTRAP handler stay
  /// mapped as inert code: a thread interrupted inside them may return there later.
  /// Precondition: all threads are stopped (a fresh attach is fine).
  [[nodiscard]] Status disarm(process::Tracee& tracee);

  /// Final read: the last events, every map merged into the runtime, lost-event notes.
  void collect(runtime::ProbeRuntime& runtime, std::FILE* diagnostics);

  /// A fork child got a copy of the patches: give it the original bytes.
  [[nodiscard]] Status clean_fork_child(process::Tracee& tracee, pid_t child);

  /// Whether a fork child can keep the patches and count into the shared region it inherits:
  /// only when its threads get slots of their own (abi::kFeatureTlsTid), never its parent's.
  [[nodiscard]] bool follows_children() const;
  /// Restores the original bytes in a followed child, attached and stopped in `child`, and lets
  /// its threads caught in the middle of a hit finish it. Leaves this engine's state alone.
  [[nodiscard]] Status release_child(process::Tracee& child);

  /// After exec the old image, with the agent and every patch in it, is gone.
  void forget_all() { sites_.clear(); trampolines_.clear(); }

  /// Whether the agent's SIGTRAP handler is installed (int3-boost sites can be armed).
  [[nodiscard]] bool has_trap_handler() const { return trap_handler_; }

  /// The loader's rendezvous breakpoint at `address` (a trap passthrough) makes threads of
  /// process `pid` wait for dprobe (abi::LoaderHandshake); 0 stops every wait at once.
  /// `state_address`: the loader's r_state (0: unknown, every stop waits).
  void set_loader_handshake(uint64_t address, uint64_t state_address, pid_t pid);
  /// Loader stops the target asked dprobe to serve so far (target-written: only compared).
  [[nodiscard]] uint32_t loader_requests() const;
  /// Waits up to `timeout_ms` for loader_requests() to differ from `seen` (a futex on the
  /// shared region, which the agent wakes).
  void wait_loader_request(uint32_t seen, int timeout_ms) const;
  /// Tells the threads waiting at the loader's breakpoint that stops up to `requests` are
  /// served, and wakes them.
  void answer_loader(uint32_t requests);

  [[nodiscard]] const std::vector<ProbeSite>& sites() const { return sites_; }
  /// How the agent finds a thread's private state, for debugging.
  [[nodiscard]] std::string describe() const;
  /// Hits counted by the agent for one site.
  [[nodiscard]] uint64_t hits(const ProbeSite& site);

 private:
  AgentEngine(const lang::CompiledScript& script, agent::RegionLayout layout,
              agent::RegionOptions options);

  [[nodiscard]] Status prepare_jump(process::Tracee& tracee, pid_t tid, ProbeSite& site);
  [[nodiscard]] Status prepare_boost(process::Tracee& tracee, pid_t tid, ProbeSite& site);
  [[nodiscard]] Status move_threads_out_of(process::Tracee& tracee,
                                           const x86_64::Trampoline& trampoline);
  /// A thread whose PC is in the agent, or in a trampoline before the dispatcher returned,
  /// is in the middle of a hit.
  [[nodiscard]] bool inside_hit(uint64_t pc) const;
  /// Lets threads stopped in the middle of a hit finish it, so maps read afterwards hold
  /// whole hits only. Precondition and postcondition: all threads are stopped.
  [[nodiscard]] Status finish_hits_in_progress(process::Tracee& tracee);
  void release_region_memory();

  const lang::CompiledScript& script_;
  agent::RegionLayout layout_;
  agent::RegionOptions options_;
  std::unique_ptr<process::SharedMapping> region_;
  std::optional<agent::RegionReader> reader_;

  /// The region's maps as the runtime sees them while probes run (print/clear/zero and reads in
  /// BEGIN, END and interval programs).
  class RegionMaps : public runtime::ExternalMaps {
   public:
    explicit RegionMaps(AgentEngine& engine) : engine_(engine) {}
    std::vector<output::MapEntry> entries(uint32_t map) override {
      return engine_.region_entries(map);
    }
    void reset(uint32_t map, bool zero_only) override {
      if (engine_.reader_) engine_.reader_->reset_map(map, zero_only);
    }
    bool lookup(uint32_t map, std::string_view key, std::vector<uint64_t>& words) override {
      return engine_.region_lookup(map, key, words);
    }

   private:
    AgentEngine& engine_;
  };
  /// Map `map`'s entries in the region, merged, hit-counted values included (hit_counts.h).
  [[nodiscard]] std::vector<output::MapEntry> region_entries(uint32_t map);
  /// One entry's merged value in the region, hit-counted values included.
  [[nodiscard]] bool region_lookup(uint32_t map, std::string_view key, std::vector<uint64_t>& words);
  /// What a hit-counted map `map` holds now (0 for any other map).
  [[nodiscard]] uint64_t hit_counted_value(uint32_t map);
  /// The probe table as init_region got it: each site's programs, by agent probe id.
  /// Marks the maps the site's programs name (agent_maps_).
  void note_maps_named(const ProbeSite& site);
  RegionMaps region_maps_{*this};
  /// Per map: named by a program the agent runs (only those can hold entries in the region).
  std::vector<bool> agent_maps_;
  runtime::ProbeRuntime* attached_runtime_ = nullptr; ///< holds &region_maps_ until collect()
  bool collected_ = false;
  uint64_t dispatch_ = 0;
  uint64_t code_start_ = 0;  ///< the agent's code in the target
  uint64_t code_size_ = 0;
  XolArea slots_;
  std::vector<ProbeSite> sites_;
  std::vector<std::optional<x86_64::Trampoline>> trampolines_;  ///< per site (Jump only)
  /// Per probe id ever handed out: its programs and, while armed, its address (0: none). The
  /// region's probe table and trap index are written from this; collect() sums hit counters by it.
  std::vector<agent::ProbeSpec> specs_;
  /// (file, file address) -> probe id, so that a site armed again after a reload keeps its id.
  std::map<std::pair<std::string, uint64_t>, uint32_t> ids_;
  bool trap_handler_ = false;
};

}  // namespace dprobe::probes
