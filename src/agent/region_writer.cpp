#include "agent/region_writer.h"

#include <algorithm>
#include <cstring>

#include "abi/region.h"
#include "agent/region_access.h"
#include "bytecode/vm.h"

namespace dprobe::agent {

namespace {

using detail::object_at;

abi::RegionHeader* header_of(std::span<uint8_t> region) {
  return object_at<abi::RegionHeader>(region, 0);
}

template <class T> T* area_array(std::span<uint8_t> region, const abi::AreaRef& area) {
  return reinterpret_cast<T*>(region.data() + area.offset);
}

Status check_fits(std::span<uint8_t> region, const RegionLayout& layout) {
  if (header_of(region) == nullptr) return fail("agent region: buffer is not 64-byte aligned");
  return validate_layout(layout, region.size());
}

Status check_module(const RegionLayout& l, const bytecode::Module& module) {
  uint64_t code_length = 0;
  for (const bytecode::Program& p : module.programs)
    code_length += p.code.size();
  uint64_t string_bytes = 0;
  for (const std::string& s : module.strings)
    string_bytes += s.size() + 1;
  if (module.programs.size() != l.program_count || code_length != l.code_length ||
      module.maps.size() != l.map_count || module.formats.size() != l.format_count ||
      module.strings.size() != l.string_count || string_bytes > l.string_bytes.size) {
    return fail("agent region: the module does not match the layout it was planned with");
  }
  return {};
}

} // namespace

Status write_probe(std::span<uint8_t> region, const RegionLayout& layout,
                   const bytecode::Module& module, uint32_t probe_id, const ProbeSpec& probe) {
  if (Status ok = check_fits(region, layout); !ok) return ok;
  if (probe_id >= layout.probe_capacity) {
    return fail("agent region: probe id {} past the table's {} entries", probe_id,
                layout.probe_capacity);
  }
  if (probe.programs.size() > abi::kMaxProgramsPerProbe) {
    return fail("agent region: probe {} runs {} programs, at most {} fit", probe_id,
                probe.programs.size(), abi::kMaxProgramsPerProbe);
  }
  uint32_t flags = 0;
  for (uint32_t index : probe.programs) {
    if (index >= module.programs.size() || index >= layout.program_count) {
      return fail("agent region: probe {} names program {} of {}", probe_id, index,
                  layout.program_count);
    }
    flags |= program_context_flags(module.programs[index]);
  }
  abi::ProbeEntry& e = area_array<abi::ProbeEntry>(region, layout.probes)[probe_id];
  // Off while it changes: a hit that read the old enabled flag still checks every index.
  detail::store(&e.enabled, 0u);
  e.address = probe.address;
  e.resume_address = probe.resume_address;
  e.ip = probe.ip != 0 ? probe.ip : probe.address;
  e.context_flags = flags;
  FastPathInfo fast;
  if (probe.programs.size() == 1) fast = fast_path(module.programs[probe.programs[0]], layout);
  e.fast = fast.kind;
  e.fast_map = fast.map;
  e.fast_arg = fast.arg;
  for (uint32_t i = 0; i < abi::kMaxProgramsPerProbe; ++i) {
    e.programs[i] = i < probe.programs.size() ? probe.programs[i] : 0;
  }
  e.program_count = static_cast<uint32_t>(probe.programs.size());
  detail::store(&e.enabled, probe.enabled ? 1u : 0u);
  return {};
}

Status publish_trap_index(std::span<uint8_t> region, const RegionLayout& layout,
                          std::span<const ProbeSpec> probes) {
  if (Status ok = check_fits(region, layout); !ok) return ok;
  std::vector<abi::TrapIndexEntry> index;
  for (uint32_t id = 0; id < probes.size() && id < layout.probe_capacity; ++id) {
    if (probes[id].address != 0) index.push_back({probes[id].address, id, 0});
  }
  std::stable_sort(index.begin(), index.end(),
                   [](const auto& a, const auto& b) { return a.address < b.address; });
  index.erase(std::unique(index.begin(), index.end(),
                          [](const auto& a, const auto& b) { return a.address == b.address; }),
              index.end());
  abi::RegionHeader* h = header_of(region);
  const uint32_t next = (detail::load(&h->trap_generation) + 1) & 1;
  if (index.size() * sizeof(abi::TrapIndexEntry) > layout.trap_index[next].size) {
    return fail("agent region: {} trap entries do not fit the index", index.size());
  }
  if (!index.empty()) {
    std::memcpy(region.data() + layout.trap_index[next].offset, index.data(),
                index.size() * sizeof(abi::TrapIndexEntry));
  }
  detail::store(&h->trap_count[next], static_cast<uint32_t>(index.size()));
  // Readers pick the buffer by the generation's low bit: bump it last.
  detail::store(&h->trap_generation, detail::load(&h->trap_generation) + 1);
  return {};
}

Status init_region(std::span<uint8_t> region, const RegionLayout& layout,
                   const bytecode::Module& module, std::span<const ProbeSpec> probes,
                   const RegionOptions& options) {
  if (Status ok = check_fits(region, layout); !ok) return ok;
  if (Status ok = check_module(layout, module); !ok) return ok;
  if (probes.size() > layout.probe_capacity) {
    return fail("agent region: {} probes, room for {}", probes.size(), layout.probe_capacity);
  }
  // The ring's records and the arena are last in the layout: their zeroing is optional. In a
  // fresh memfd they read as zeros already, and writing 16 MiB of ring would commit every page
  // of it (tens of ms: this runs while the target is stopped, e.g. inside its dlopen).
  const uint64_t known_zero_from = layout.ring.offset + sizeof(abi::RingHeader);
  std::memset(region.data(), 0, options.zero_arena ? layout.size : known_zero_from);
  abi::RegionHeader* h = header_of(region);
  h->magic = abi::kRegionMagic;
  h->version = abi::kRegionVersion;
  h->header_size = sizeof(abi::RegionHeader);
  h->size = layout.size;
  h->features = options.features;
  h->probe_capacity = layout.probe_capacity;
  h->probe_count = static_cast<uint32_t>(probes.size());
  h->program_count = layout.program_count;
  h->code_length = layout.code_length;
  h->map_count = layout.map_count;
  h->format_count = layout.format_count;
  h->string_count = layout.string_count;
  h->thread_slot_count = layout.thread_slot_count;
  h->scratch_count = layout.scratch_count;
  h->clock_gettime = options.clock_gettime;
  h->tls_tid_offset = options.tls_tid_offset;
  h->start_ns = options.start_ns;
  h->sigtrap_prev_handler = options.sigtrap_prev_handler;
  h->sigtrap_prev_flags = options.sigtrap_prev_flags;
  h->probes = layout.probes;
  h->trap_index[0] = layout.trap_index[0];
  h->trap_index[1] = layout.trap_index[1];
  h->programs = layout.programs;
  h->code = layout.code;
  h->vm_maps = layout.vm_maps;
  h->vm_formats = layout.vm_formats;
  h->map_descs = layout.map_descs;
  h->string_descs = layout.string_descs;
  h->string_views = layout.string_views;
  h->string_bytes = layout.string_bytes;
  h->thread_slots = layout.thread_slots;
  h->scratch = layout.scratch;
  h->ring = layout.ring;
  h->arena = layout.arena;
  h->unwind_modules = layout.unwind_modules;
  h->unwind_rows = layout.unwind_rows;
  h->stacks = layout.stacks;
  h->unwind_module_capacity = layout.unwind_module_capacity;
  h->unwind_row_capacity = layout.unwind_row_capacity;
  h->stack_capacity = layout.stack_capacity;

  auto* descs = area_array<abi::ProgramDesc>(region, layout.programs);
  auto* code = area_array<bytecode::Insn>(region, layout.code);
  uint32_t code_offset = 0;
  for (uint32_t i = 0; i < layout.program_count; ++i) {
    const bytecode::Program& p = module.programs[i];
    descs[i] = abi::ProgramDesc{};
    descs[i].code_offset = code_offset;
    descs[i].length = static_cast<uint32_t>(p.code.size());
    descs[i].frame_size = p.frame_size;
    descs[i].context_flags = program_context_flags(p);
    if (!p.code.empty()) {
      std::memcpy(code + code_offset, p.code.data(), p.code.size() * sizeof(bytecode::Insn));
    }
    code_offset += static_cast<uint32_t>(p.code.size());
  }
  auto* vm_maps = area_array<bytecode::VmMapInfo>(region, layout.vm_maps);
  auto* map_descs = area_array<abi::MapDesc>(region, layout.map_descs);
  for (uint32_t i = 0; i < layout.map_count; ++i) {
    const MapLayout& m = layout.maps[i];
    vm_maps[i].key_size = m.key_size;
    map_descs[i].key_size = m.key_size;
    map_descs[i].capacity = m.capacity;
    map_descs[i].max_entries = m.max_entries;
    map_descs[i].mode = m.mode;
    map_descs[i].value_kind = static_cast<uint8_t>(m.value_kind);
    map_descs[i].value_words = m.value_words;
  }
  auto* vm_formats = area_array<bytecode::VmFormatInfo>(region, layout.vm_formats);
  for (uint32_t i = 0; i < layout.format_count; ++i)
    vm_formats[i].args_size = layout.format_sizes[i];
  auto* string_descs = area_array<abi::StringDesc>(region, layout.string_descs);
  char* bytes = area_array<char>(region, layout.string_bytes);
  uint32_t offset = 0;
  for (uint32_t i = 0; i < layout.string_count; ++i) {
    const std::string& s = module.strings[i];
    string_descs[i] = abi::StringDesc{offset, static_cast<uint32_t>(s.size())};
    std::memcpy(bytes + offset, s.data(), s.size());
    offset += static_cast<uint32_t>(s.size()) + 1;
  }
  for (uint32_t id = 0; id < probes.size(); ++id) {
    if (Status ok = write_probe(region, layout, module, id, probes[id]); !ok) return ok;
  }
  if (Status ok = publish_trap_index(region, layout, probes); !ok) return ok;
  if (options.enabled) detail::store(&h->enabled, 1u);
  return {};
}

uint32_t publish_unwind_tables(std::span<uint8_t> region, const RegionLayout& layout,
                               std::span<const abi::UnwindModule> modules,
                               std::span<const abi::UnwindRow> rows) {
  if (layout.unwind_module_capacity == 0 || !check_fits(region, layout)) {
    return 0;
  }
  abi::RegionHeader* h = header_of(region);
  uint32_t count = detail::load(&h->unwind_module_count);
  if (count > layout.unwind_module_capacity) count = layout.unwind_module_capacity;
  auto* out_modules = area_array<abi::UnwindModule>(region, layout.unwind_modules);
  auto* out_rows = area_array<abi::UnwindRow>(region, layout.unwind_rows);
  uint32_t published = count;
  for (size_t i = count; i < modules.size() && published < layout.unwind_module_capacity; ++i) {
    const abi::UnwindModule& m = modules[i];
    const uint64_t end = uint64_t{m.first_row} + m.row_count;
    if (end > rows.size() || end > layout.unwind_row_capacity) break;
    std::memcpy(out_rows + m.first_row, rows.data() + m.first_row,
                uint64_t{m.row_count} * sizeof(abi::UnwindRow));
    out_modules[i] = m;
    published = static_cast<uint32_t>(i + 1);
  }
  detail::store(&h->unwind_module_count, published);
  return published;
}

void set_cpid(std::span<uint8_t> region, const RegionLayout& layout, uint64_t cpid) {
  if (!check_fits(region, layout)) return;
  detail::store(&header_of(region)->cpid, cpid);
}

void set_enabled(std::span<uint8_t> region, const RegionLayout& layout, bool enabled) {
  if (!check_fits(region, layout)) return;
  detail::store(&header_of(region)->enabled, enabled ? 1u : 0u);
}

void set_features(std::span<uint8_t> region, const RegionLayout& layout, uint32_t features) {
  if (!check_fits(region, layout)) return;
  detail::store(&header_of(region)->features, features);
}

Status set_probe_enabled(std::span<uint8_t> region, const RegionLayout& layout, uint32_t probe_id,
                         bool enabled) {
  if (Status ok = check_fits(region, layout); !ok) return ok;
  if (probe_id >= layout.probe_capacity) return fail("agent region: no probe {}", probe_id);
  detail::store(&area_array<abi::ProbeEntry>(region, layout.probes)[probe_id].enabled,
                enabled ? 1u : 0u);
  return {};
}

void forget_thread(std::span<uint8_t> region, const RegionLayout& layout, uint32_t tid) {
  if (!check_fits(region, layout)) return;
  auto* slots = area_array<abi::ThreadSlot>(region, layout.thread_slots);
  for (uint32_t i = 0; i < layout.thread_slot_count; ++i) {
    if (detail::load(&slots[i].key) != 0 && detail::load(&slots[i].tid) == tid) {
      detail::store(&slots[i].have, 0u);
    }
  }
}

} // namespace dprobe::agent
