#include "runtime/probe_runtime.h"

#include <stdio.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bytecode/aggregate.h"
#include "output/json_printer.h"

namespace dprobe::runtime {

namespace {
/// Bytes of printf output buffered before they are written.
constexpr size_t kPendingSize = 256 * 1024;
/// An entry's value as one array of words.
std::vector<uint64_t> whole_value(const output::MapEntry& e) {
  std::vector<uint64_t> words{e.value};
  words.insert(words.end(), e.rest.begin(), e.rest.end());
  return words;
}

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

/// strftime of a CLOCK_MONOTONIC timestamp (nsecs) as wall-clock local time, as bpftrace 0.17
/// turns its boot-based nanoseconds into a date.
std::string format_time(const std::string& format, uint64_t monotonic_ns) {
  const uint64_t now_real = clock_ns(CLOCK_REALTIME);
  const uint64_t now_mono = clock_ns(CLOCK_MONOTONIC);
  const time_t seconds =
      static_cast<time_t>((now_real - now_mono + monotonic_ns) / 1'000'000'000ull);
  tm local{};
  localtime_r(&seconds, &local);
  char text[512];
  const size_t n = strftime(text, sizeof text, format.c_str(), &local);
  return std::string(text, n);
}

/// Runs `command` with /bin/sh and returns what it wrote on stdout, as bpftrace 0.17's system()
/// does (it prints the output itself, into -o's file too).
std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char chunk[4096];
  while (size_t n = std::fread(chunk, 1, sizeof chunk, pipe))
    output.append(chunk, n);
  (void)::pclose(pipe);
  return output;
}

/// The text of a print(value) event without its newline.
std::string_view without_newline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

} // namespace

uint64_t monotonic_now_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}

ProbeRuntime::ProbeRuntime(const lang::CompiledScript& script, std::FILE* out,
                           OutputFormat format)
    : script_(script), out_(out), format_(format), tables_(script.module), maps_(script.module.maps),
      state_(std::make_unique<bytecode::VmState>()) {
  formats_.reserve(script.module.formats.size());
  for (const bytecode::PrintfFormat& format : script.module.formats) {
    formats_.push_back(output::parse_printf_format(format.format));
  }
  compiled_.reserve(formats_.size());
  for (size_t i = 0; i < formats_.size(); ++i) {
    compiled_.emplace_back(formats_[i], script.module.formats[i].args);
  }
  pending_ = std::make_unique<char[]>(kPendingSize);
  start_ns_ = clock_ns(CLOCK_MONOTONIC);
  string_maps_.resize(script.module.maps.size());
}

// Output still buffered is not written here: the stream may be closed already (flush() first).
ProbeRuntime::~ProbeRuntime() = default;

void ProbeRuntime::write_pending() {
  if (pending_used_ != 0) std::fwrite(pending_.get(), 1, pending_used_, out_);
  pending_used_ = 0;
}

void ProbeRuntime::flush() {
  write_pending();
  std::fflush(out_);
}

void ProbeRuntime::run(uint32_t program_index, const HitContext& ctx, MemoryReader& memory) {
  if (program_index >= script_.module.programs.size()) {
    ++vm_errors_;
    last_status_ = bytecode::VmStatus::BadProgram;
    return;
  }
  bytecode::VmContext context{};
  for (int i = 0; i < 6; ++i)
    context.args[i] = ctx.regs_args[i];
  context.pid = static_cast<uint64_t>(static_cast<uint32_t>(ctx.pid));
  context.tid = static_cast<uint64_t>(static_cast<uint32_t>(ctx.tid));
  context.nsecs = ctx.nsecs;
  context.elapsed = ctx.nsecs > start_ns_ ? ctx.nsecs - start_ns_ : 0;
  context.uid = ctx.uid;
  context.gid = ctx.gid;
  context.cpu = ctx.cpu;
  context.cpid = cpid_;
  std::memcpy(context.regs, ctx.regs, sizeof(context.regs));
  // Return probes fire just before the exit instruction: the return value is in rax.
  context.retval = ctx.regs[static_cast<uint32_t>(bytecode::CtxReg::Rax)];
  std::memcpy(context.comm, ctx.comm, sizeof(context.comm));
  context.comm[sizeof(context.comm) - 1] = '\0';

  const bytecode::VmHost host{this,        &host_read,   &host_lookup,      &host_update,
                              &host_delete, &host_printf, &host_exit,        &host_map_command,
                              &host_stack_id};
  memory_ = &memory;
  hit_ = &ctx;
  last_status_ =
      bytecode::vm_run(tables_.program(program_index), tables_.view(), context, host, *state_);
  memory_ = nullptr;
  hit_ = nullptr;
  if (last_status_ != bytecode::VmStatus::Ok && last_status_ != bytecode::VmStatus::Exited) {
    ++vm_errors_;
  }
}

std::string ProbeRuntime::format_maps() const {
  std::vector<uint32_t> order(script_.module.maps.size());
  for (uint32_t i = 0; i < order.size(); ++i)
    order[i] = i;
  // bpftrace keeps its maps in a std::map keyed by name.
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return script_.module.maps[a].name < script_.module.maps[b].name;
  });
  std::string text;
  for (uint32_t id : order) {
    const bytecode::MapSchema& schema = script_.module.maps[id];
    if (schema.value == bytecode::MapValueKind::String) {
      text += format_string_map(id);
    } else {
      text += format_map(id, maps_.entries(id));
    }
  }
  return text;
}

std::string ProbeRuntime::format_map(uint32_t map, std::vector<output::MapEntry> entries,
                                     bytecode::PrintLimits limits) const {
  const bytecode::MapSchema& schema = script_.module.maps[map];
  return format_ == OutputFormat::Json
             ? output::format_map_json(schema, std::move(entries), &stacks_, limits)
             : output::format_map(schema, std::move(entries), &stacks_, limits);
}

std::string ProbeRuntime::format_string_map(uint32_t map) const {
  const bytecode::MapSchema& schema = script_.module.maps[map];
  std::vector<std::pair<std::string, std::string>> entries(string_maps_[map].begin(),
                                                           string_maps_[map].end());
  return format_ == OutputFormat::Json
             ? output::format_string_map_json(schema, std::move(entries), &stacks_)
             : output::format_string_map(schema, std::move(entries), &stacks_);
}

void ProbeRuntime::print_maps() {
  flush();
  const std::string text = "\n\n" + format_maps();
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

uint64_t ProbeRuntime::host_stack_id(void* ctx, uint32_t max_frames, uint32_t skip) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  const HitContext* hit = self->hit_;
  if (hit == nullptr || hit->unwind == nullptr || self->memory_ == nullptr) return 0;
  using bytecode::CtxReg;
  const abi::StackStart start{hit->regs[static_cast<uint32_t>(CtxReg::Rip)],
                              hit->regs[static_cast<uint32_t>(CtxReg::Rsp)],
                              hit->regs[static_cast<uint32_t>(CtxReg::Rbp)]};
  uint64_t frames[abi::kMaxStackFrames];
  MemoryReader& memory = *self->memory_;
  const uint32_t depth = abi::walk_stack(
      *hit->unwind, start,
      [&memory](uint64_t address, uint64_t* word) { return memory.read(address, word, 8); },
      frames, max_frames, skip);
  const auto pid = static_cast<uint32_t>(hit->pid);
  const uint64_t id = abi::stack_id(pid, frames, depth);
  self->stacks_.add(id, pid, std::span<const uint64_t>(frames, depth));
  return id;
}

bool ProbeRuntime::host_read(void* ctx, uint64_t address, void* dst, uint64_t length) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  if (self->memory_ == nullptr) return false;
  return self->memory_->read(address, dst, static_cast<size_t>(length));
}

bool ProbeRuntime::host_lookup(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size,
                               uint64_t* value) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  return self->lookup_merged(map, std::string_view(reinterpret_cast<const char*>(key), key_size),
                             value);
}

bool ProbeRuntime::lookup_merged(uint32_t map, std::string_view key, uint64_t* value) {
  uint64_t own = 0;
  const bool have_own = maps_.lookup(map, key, &own);
  std::vector<uint64_t> there;
  if (external_ == nullptr || map >= script_.module.maps.size() ||
      !external_->lookup(map, key, there) || there.empty()) {
    if (have_own) *value = own;
    return have_own;
  }
  // The same rule as the final merge (MapStore::merge): aggregations combine, an assigned value
  // from the agent is the newer one.
  const bytecode::MapValueKind kind = script_.module.maps[map].value;
  if (have_own && bytecode::merge_rule(kind) != bytecode::MergeRule::Any) {
    bytecode::merge_value(kind, &own, there.data(), 1);
    *value = own;
  } else {
    *value = there.front();
  }
  return true;
}

bool ProbeRuntime::host_update(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size,
                               uint32_t op, uint64_t value) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  if (op >= static_cast<uint32_t>(bytecode::UpdateOp::kCount)) return false;
  return self->maps_.update(map, std::string_view(reinterpret_cast<const char*>(key), key_size),
                            static_cast<bytecode::UpdateOp>(op), value);
}

void ProbeRuntime::host_delete(void* ctx, uint32_t map, const uint8_t* key, uint32_t key_size) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  self->maps_.remove(map, std::string_view(reinterpret_cast<const char*>(key), key_size));
}

void ProbeRuntime::emit_special(uint32_t format, std::span<const uint8_t> args) {
  const bytecode::PrintfFormat& spec = script_.module.formats[format];
  if (spec.kind == bytecode::EventKind::MapSet || spec.kind == bytecode::EventKind::MapDelete) {
    if (spec.map >= script_.module.maps.size()) return;
    const bytecode::MapSchema& schema = script_.module.maps[spec.map];
    const uint32_t key_size = schema.key_size();
    const bool set = spec.kind == bytecode::EventKind::MapSet;
    if (args.size() < key_size + (set ? bytecode::kStringFieldSize : 0)) return;
    auto& values = string_maps_[spec.map];
    std::string key(reinterpret_cast<const char*>(args.data()), key_size);
    if (!set) {
      values.erase(key);
      return;
    }
    const uint8_t* field = args.data() + key_size;
    std::string value(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
    auto it = values.find(key);
    if (it != values.end()) {
      it->second = std::move(value);
    } else if (values.size() < schema.max_entries) { // a full map drops the update, as BPF
      values.emplace(std::move(key), std::move(value));
    }
    return;
  }
  if (spec.kind == bytecode::EventKind::Time) {
    text_ = format_time(spec.format, clock_ns(CLOCK_MONOTONIC));
  } else if (spec.strftime_formats.empty()) {
    text_ = output::format_printf(formats_[format], spec.args, args, &stacks_);
  } else {
    // strftime() arguments travel as their nanoseconds: print each as its formatted date.
    std::vector<bytecode::FieldKind> kinds;
    std::string packed;
    size_t offset = 0;
    for (size_t i = 0; i < spec.args.size(); ++i) {
      const uint32_t size = bytecode::field_size(spec.args[i]);
      if (offset + size > args.size()) break;
      if (!spec.strftime_formats[i].empty()) {
        std::string date =
            format_time(spec.strftime_formats[i], bytecode::load_u64_le(args.data() + offset));
        date.resize(std::min<size_t>(std::strlen(date.c_str()), bytecode::kMaxStringLength));
        packed += date;
        packed.append(bytecode::kStringFieldSize - date.size(), '\0');
        kinds.push_back(bytecode::FieldKind::String);
      } else {
        packed.append(reinterpret_cast<const char*>(args.data() + offset), size);
        kinds.push_back(spec.args[i]);
      }
      offset += size;
    }
    text_ = output::format_printf(
        formats_[format], kinds,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(packed.data()), packed.size()));
  }
  if (spec.kind == bytecode::EventKind::System) {
    // bpftrace runs the command, waits for it and prints what it wrote as its own output.
    flush();
    std::fflush(stdout);
    const std::string output = run_command(text_);
    text_ = format_ == OutputFormat::Json ? output::json_event("syscall", output) : output;
  } else if (format_ == OutputFormat::Json) {
    text_ = spec.kind == bytecode::EventKind::Time    ? output::json_event("time", text_)
            : spec.kind == bytecode::EventKind::Value
                ? output::json_print_value(without_newline(text_),
                                           !spec.args.empty() &&
                                               bytecode::is_stack_field(spec.args[0]))
                                                      : output::json_printf(text_);
  }
  append_pending(text_);
}

void ProbeRuntime::append_pending(std::string_view text) {
  if (kPendingSize - pending_used_ < text.size()) write_pending();
  if (text.size() > kPendingSize) {
    std::fwrite(text.data(), 1, text.size(), out_);
    return;
  }
  std::memcpy(pending_.get() + pending_used_, text.data(), text.size());
  pending_used_ += text.size();
}

void ProbeRuntime::emit_printf(uint32_t format, std::span<const uint8_t> args) {
  if (format >= compiled_.size()) return;
  const bytecode::PrintfFormat& spec = script_.module.formats[format];
  const bool value = spec.kind == bytecode::EventKind::Value;
  if ((spec.kind != bytecode::EventKind::Printf && !value) || !spec.strftime_formats.empty() ||
      std::any_of(spec.args.begin(), spec.args.end(), bytecode::is_stack_field)) {
    emit_special(format, args);
    return;
  }
  const output::CompiledFormat& compiled = compiled_[format];
  if (format_ == OutputFormat::Text && compiled.fast() && args.size() >= compiled.args_size() &&
      compiled.max_length() <= kPendingSize) {
    if (kPendingSize - pending_used_ < compiled.max_length()) write_pending();
    char* at = pending_.get() + pending_used_;
    pending_used_ += static_cast<size_t>(compiled.write(at, args) - at);
    return;
  }
  text_.clear();
  compiled.append(text_, args);
  // -f json: each event is one line of its own, whatever newlines its text holds.
  if (format_ == OutputFormat::Json) {
    text_ = value ? output::json_print_value(
                        without_newline(text_),
                        !spec.args.empty() && spec.args[0] != bytecode::FieldKind::Int)
                  : output::json_printf(text_);
  }
  append_pending(text_);
}

bool ProbeRuntime::merge_map_entry(uint32_t map, std::string_view key,
                                   std::span<const uint64_t> words) {
  if (map >= script_.module.maps.size()) return false;
  return maps_.merge(map, key, words);
}

void ProbeRuntime::map_command(uint32_t map, uint32_t command, bool include_external) {
  if (map >= script_.module.maps.size()) return;
  switch (static_cast<bytecode::MapCommandKind>(bytecode::map_command_kind(command))) {
  case bytecode::MapCommandKind::Print: {
    const uint32_t index = bytecode::map_command_limits(command);
    const bytecode::PrintLimits limits = index != 0 && index <= script_.module.print_limits.size()
                                             ? script_.module.print_limits[index - 1]
                                             : bytecode::PrintLimits{};
    print_map_merged(map,
                     external_ != nullptr ? external_->entries(map)
                                          : std::vector<output::MapEntry>{},
                     limits);
    return;
  }
  case bytecode::MapCommandKind::Clear:
    maps_.clear(map);
    if (include_external && external_ != nullptr) external_->reset(map, false);
    return;
  case bytecode::MapCommandKind::Zero:
    maps_.zero(map);
    if (include_external && external_ != nullptr) external_->reset(map, true);
    return;
  case bytecode::MapCommandKind::kCount:
    break;
  }
}

void ProbeRuntime::print_map_merged(uint32_t map, const std::vector<output::MapEntry>& extra,
                                    bytecode::PrintLimits limits) {
  if (map >= script_.module.maps.size()) return;
  const bytecode::MapSchema& schema = script_.module.maps[map];
  std::string text;
  if (schema.value == bytecode::MapValueKind::String) {
    text = format_string_map(map); // the controller holds every string value
  } else {
    MapStore merged({schema});
    for (const output::MapEntry& e : maps_.entries(map)) {
      (void)merged.merge(0, e.key, whole_value(e));
    }
    for (const output::MapEntry& e : extra) {
      (void)merged.merge(0, e.key, whole_value(e));
    }
    text = format_map(map, merged.entries(0), limits);
  }
  flush();
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

void ProbeRuntime::host_map_command(void* ctx, uint32_t map, uint32_t command) {
  static_cast<ProbeRuntime*>(ctx)->map_command(map, command);
}

void ProbeRuntime::host_printf(void* ctx, uint32_t format, const uint8_t* args, uint32_t size) {
  auto* self = static_cast<ProbeRuntime*>(ctx);
  self->emit_printf(format, std::span<const uint8_t>(args, size));
  self->flush();
}

void ProbeRuntime::host_exit(void* ctx) {
  static_cast<ProbeRuntime*>(ctx)->exit_requested_ = true;
}

} // namespace dprobe::runtime
