// Controller-side execution of probe programs: runs the VM for each hit that arrives via
// ptrace, owns the map store, prints printf events as they happen and the maps at the end,
// byte-identical to bpftrace 0.17.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bytecode/module.h"
#include "bytecode/vm.h"
#include "lang/compiler.h"
#include "output/printf_format.h"
#include "abi/unwind.h"
#include "runtime/map_store.h"
#include "stacks/stack_store.h"

namespace dprobe::runtime {

struct HitContext {
  int32_t pid = 0, tid = 0;
  uint64_t regs_args[6] = {}; ///< rdi rsi rdx rcx r8 r9 at the hit
  uint64_t nsecs = 0;         ///< CLOCK_MONOTONIC at the hit, ns
  char comm[16] = {};         ///< NUL-terminated thread name
  uint32_t uid = 0, gid = 0;  ///< the thread's real ids
  uint32_t cpu = 0;           ///< the CPU the thread last ran on
  /// Every register reg() names, indexed by bytecode::CtxReg (rip: the probed instruction).
  uint64_t regs[static_cast<uint32_t>(bytecode::CtxReg::kCount)] = {};
  /// ustack: the process's unwind tables (null: no user stack, as in BEGIN and END).
  const abi::UnwindView* unwind = nullptr;
};

/// Fault-safe reads of target memory (ptrace /proc/PID/mem now, the agent later).
class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  /// False when any byte of [address, address + length) cannot be read.
  virtual bool read(uint64_t address, void* dst, size_t length) = 0;
};

/// Map entries kept outside the runtime while probes run (the agent's tables in the shared
/// region), which print(), clear() and zero() in programs the runtime runs must see too.
class ExternalMaps {
 public:
  virtual ~ExternalMaps() = default;
  /// Map `map`'s entries there, merged, unordered.
  virtual std::vector<output::MapEntry> entries(uint32_t map) = 0;
  /// clear (zero_only false) or zero the map there.
  virtual void reset(uint32_t map, bool zero_only) = 0;
  /// The merged value (every word) of map `map`'s entry for packed `key` there, for a program
  /// the runtime runs that reads the map; false (and `words` unspecified) when there is none.
  virtual bool lookup(uint32_t map, std::string_view key, std::vector<uint64_t>& words) = 0;
};

/// -f: bpftrace's text, or its JSON lines (output/json_printer.h).
enum class OutputFormat { Text, Json };

/// CLOCK_MONOTONIC now, in ns (the clock of nsecs and elapsed).
[[nodiscard]] uint64_t monotonic_now_ns();

class ProbeRuntime {
 public:
  /// Keeps a reference to `script`, which must outlive the runtime.
  ProbeRuntime(const lang::CompiledScript& script, std::FILE* out,
               OutputFormat format = OutputFormat::Text);
  ProbeRuntime(const ProbeRuntime&) = delete;
  ProbeRuntime& operator=(const ProbeRuntime&) = delete;
  ~ProbeRuntime();

  /// Runs program `program_index` for one hit. printf output is written (and flushed) at once.
  void run(uint32_t program_index, const HitContext& ctx, MemoryReader& memory);
  /// exit() was called by some program.
  [[nodiscard]] bool exit_requested() const { return exit_requested_; }
  /// bpftrace's end-of-run output, to be called after the END probe ran: a blank line pair
  /// ("\n\n", printed by bpftrace even with no maps), then every map in name order (format_maps).
  void print_maps();
  /// Programs stopped by a VM fault (bad bytecode, step limit, bad program index); stays 0.
  [[nodiscard]] uint64_t vm_errors() const { return vm_errors_; }

  /// A printf event produced elsewhere (the in-target agent's ring buffer), formatted exactly
  /// like one from run(). Buffered in the runtime (written in large blocks): call flush() after
  /// a batch, before anything else writes to the output.
  void emit_printf(uint32_t format, std::span<const uint8_t> args);
  /// Folds one entry produced elsewhere (an agent shard) into map `map` by the map's merge rule
  /// (counts, sums, averages and histograms add; min and max keep the extreme; assigned values
  /// take the value). `words` is the whole value. False when dropped (unknown map, wrong key or
  /// value size, map full).
  bool merge_map_entry(uint32_t map, std::string_view key, std::span<const uint64_t> words);
  bool merge_map_entry(uint32_t map, std::string_view key, uint64_t value) {
    return merge_map_entry(map, key, std::span<const uint64_t>(&value, 1));
  }
  /// print(@m), clear(@m), zero(@m) (a bytecode::map_command_word): print writes the map as
  /// bpftrace's print() does, after any buffered printf output, merged with the external maps;
  /// clear and zero reset the runtime's own entries, and the external ones with
  /// `include_external` (the agent resets its own before it asks dprobe to follow).
  void map_command(uint32_t map, uint32_t command, bool include_external = true);
  /// Where entries live outside the runtime (null: nowhere). The caller keeps `maps` alive
  /// until it sets null again.
  void set_external_maps(ExternalMaps* maps) { external_ = maps; }
  /// print(@m) of the runtime's map merged with entries held elsewhere (the agent's tables),
  /// without changing either.
  void print_map_merged(uint32_t map, const std::vector<output::MapEntry>& extra,
                        bytecode::PrintLimits limits = {});
  void request_exit() { exit_requested_ = true; }
  /// Writes the buffered printf output and flushes the stream.
  void flush();

  /// Every map in name order, as bpftrace prints them (without the leading "\n\n").
  [[nodiscard]] std::string format_maps() const;
  [[nodiscard]] const MapStore& maps() const { return maps_; }
  /// Where events and maps are written, and how.
  [[nodiscard]] std::FILE* output() const { return out_; }
  [[nodiscard]] OutputFormat format() const { return format_; }
  /// Map `map`'s entries, removed from the runtime (to be kept elsewhere: the agent's region).
  [[nodiscard]] std::vector<output::MapEntry> take_entries(uint32_t map) {
    std::vector<output::MapEntry> entries = maps_.entries(map);
    maps_.clear(map);
    return entries;
  }
  /// Status of the last run (for logs when vm_errors() grows).
  [[nodiscard]] bytecode::VmStatus last_status() const { return last_status_; }
  /// When tracing started (CLOCK_MONOTONIC ns): the in-target agent counts `elapsed` from it.
  [[nodiscard]] uint64_t start_ns() const { return start_ns_; }
  /// `cpid`: the pid of the command dprobe launched (-c), 0 until then.
  void set_cpid(uint64_t cpid) { cpid_ = cpid; }
  [[nodiscard]] uint64_t cpid() const { return cpid_; }
  /// Every stack captured (ustack) and their names: agents' stacks are added here as dprobe
  /// reads their regions.
  [[nodiscard]] stacks::StackStore& stacks() const { return stacks_; }

 private:
  static bool host_read(void* ctx, uint64_t address, void* dst, uint64_t length);
  static bool host_lookup(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size,
                          uint64_t* value);
  static bool host_update(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size,
                          uint32_t op, uint64_t value);
  static void host_delete(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size);
  static void host_printf(void* ctx, uint32_t format, const uint8_t* args, uint32_t size);
  static void host_exit(void* ctx);
  static void host_map_command(void* ctx, uint32_t map, uint32_t command);
  static uint64_t host_stack_id(void* ctx, uint32_t max_frames, uint32_t skip);

  /// A Time or System event, or a printf with strftime arguments: the slow, rare path.
  void emit_special(uint32_t format, std::span<const uint8_t> args);
  /// Queues text behind the buffered output (written at once when larger than the buffer).
  void append_pending(std::string_view text);
  /// Word 0 of map `map`'s value for `key`: the runtime's own entry merged with the external
  /// one (the agent's, while probes run), by the rule of the final merge.
  bool lookup_merged(uint32_t map, std::string_view key, uint64_t* value);
  /// One map as the output format shows it (text or JSON).
  [[nodiscard]] std::string format_map(uint32_t map, std::vector<output::MapEntry> entries,
                                       bytecode::PrintLimits limits = {}) const;
  [[nodiscard]] std::string format_string_map(uint32_t map) const;

  const lang::CompiledScript& script_;
  std::FILE* out_;
  OutputFormat format_;
  uint64_t start_ns_ = 0;
  uint64_t cpid_ = 0; ///< CLOCK_MONOTONIC when the runtime was made: `elapsed` counts from it
  bytecode::VmModuleTables tables_;
  std::vector<output::ParsedFormat> formats_;
  std::vector<output::CompiledFormat> compiled_; ///< one per formats_ entry, refers to it
  void write_pending();
  std::unique_ptr<char[]> pending_; ///< formatted printf output not yet written
  size_t pending_used_ = 0;         ///< bytes of pending_ in use
  std::string text_;                ///< one event's text on the generic path
  MapStore maps_;
  ExternalMaps* external_ = nullptr;
  /// Values of string maps (MapValueKind::String), by map id then packed key.
  std::vector<std::unordered_map<std::string, std::string>> string_maps_;
  std::unique_ptr<bytecode::VmState> state_;
  MemoryReader* memory_ = nullptr; ///< set only while run() executes
  const HitContext* hit_ = nullptr; ///< set only while run() executes
  /// Mutable: printing names stacks, which opens files and caches their symbols.
  mutable stacks::StackStore stacks_;
  bool exit_requested_ = false;
  uint64_t vm_errors_ = 0;
  bytecode::VmStatus last_status_ = bytecode::VmStatus::Ok;
};

} // namespace dprobe::runtime
