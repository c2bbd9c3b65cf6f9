// First-hit validation of the region. The controller wrote it, but a bug there (or the target
// scribbling on its own region) must not turn into wild pointers: every area and table index
// is checked here once, and the pointer tables the VM needs are built from offsets.
//
// Several threads may prepare at once: they write the same values, then publish kModuleReady
// (release) for the hit path's acquire load.
#include "agent/blob/agent.h"
#include "bytecode/aggregate.h"
#include "agent/blob/atomics.h"

namespace dprobe::agent::blob {

static_assert(sizeof(bytecode::VmModule) <= sizeof(RegionHeader::agent_private),
              "the prepared module fits the header");
static_assert(sizeof(bytecode::VmState) == abi::kVmStateSize, "VmState size is part of the ABI");
static_assert(sizeof(bytecode::VmString) == 16, "string views are 16 bytes");
static_assert(sizeof(bytecode::VmMapInfo) == 4 && sizeof(bytecode::VmFormatInfo) == 4,
              "map and format infos are one uint32 each");
static_assert(sizeof(bytecode::Insn) == 16, "instructions are 16 bytes");

namespace {

bool is_power_of_two(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

/// The area lies inside the region, aligned, and holds at least `need` bytes.
bool area_ok(const RegionHeader& h, const abi::AreaRef& a, uint64_t need) {
  if (a.offset % abi::kAreaAlign != 0 || a.offset < abi::kHeaderAreaSize) return false;
  if (a.offset > h.size || a.size > h.size - a.offset) return false;
  return need <= a.size;
}

bool validate(RegionHeader* h) {
  const RegionHeader& r = *h;
  if (r.magic != abi::kRegionMagic || r.version != abi::kRegionVersion ||
      r.header_size != sizeof(RegionHeader) || r.size < abi::kHeaderAreaSize) {
    return false;
  }
  if (!area_ok(r, r.probes, uint64_t{r.probe_capacity} * sizeof(abi::ProbeEntry)) ||
      !area_ok(r, r.trap_index[0], 0) || !area_ok(r, r.trap_index[1], 0) ||
      !area_ok(r, r.programs, uint64_t{r.program_count} * sizeof(abi::ProgramDesc)) ||
      !area_ok(r, r.code, uint64_t{r.code_length} * sizeof(bytecode::Insn)) ||
      !area_ok(r, r.vm_maps, uint64_t{r.map_count} * sizeof(bytecode::VmMapInfo)) ||
      !area_ok(r, r.vm_formats, uint64_t{r.format_count} * sizeof(bytecode::VmFormatInfo)) ||
      !area_ok(r, r.map_descs, uint64_t{r.map_count} * sizeof(abi::MapDesc)) ||
      !area_ok(r, r.string_descs, uint64_t{r.string_count} * sizeof(abi::StringDesc)) ||
      !area_ok(r, r.string_views, uint64_t{r.string_count} * sizeof(bytecode::VmString)) ||
      !area_ok(r, r.string_bytes, 0) ||
      !area_ok(r, r.thread_slots, uint64_t{r.thread_slot_count} * sizeof(abi::ThreadSlot)) ||
      !area_ok(r, r.scratch, uint64_t{r.scratch_count} * sizeof(abi::ScratchState)) ||
      !area_ok(r, r.ring, sizeof(abi::RingHeader)) || !area_ok(r, r.arena, 0)) {
    return false;
  }
  if (r.thread_slot_count != 0 && !is_power_of_two(r.thread_slot_count)) return false;
  if (!is_power_of_two(r.ring.size - sizeof(abi::RingHeader))) return false;
  if (r.format_count > abi::kRecordFormatMask) return false;

  const auto* programs = area<abi::ProgramDesc>(h, r.programs);
  for (uint32_t i = 0; i < r.program_count; ++i) {
    const abi::ProgramDesc& p = programs[i];
    if (p.code_offset > r.code_length || p.length > r.code_length - p.code_offset ||
        p.length > bytecode::kMaxProgramLength || p.frame_size > bytecode::kMaxFrameSize) {
      return false;
    }
  }
  const auto* descs = area<abi::MapDesc>(h, r.map_descs);
  const auto* infos = area<bytecode::VmMapInfo>(h, r.vm_maps);
  for (uint32_t i = 0; i < r.map_count; ++i) {
    const abi::MapDesc& d = descs[i];
    if (d.key_size > bytecode::kMaxFrameSize || infos[i].key_size != d.key_size ||
        !is_power_of_two(d.capacity) || d.capacity > (1u << 24) || d.mode > abi::kMapShared ||
        d.value_words == 0 || d.value_words > bytecode::kMaxValueWords) {
      return false;
    }
  }
  const auto* strings = area<abi::StringDesc>(h, r.string_descs);
  for (uint32_t i = 0; i < r.string_count; ++i) {
    if (strings[i].offset > r.string_bytes.size ||
        strings[i].length > r.string_bytes.size - strings[i].offset) {
      return false;
    }
  }
  return true;
}

void build_module(RegionHeader* h) {
  auto* views = area<bytecode::VmString>(h, h->string_views);
  const auto* strings = area<abi::StringDesc>(h, h->string_descs);
  const char* bytes = area<const char>(h, h->string_bytes);
  for (uint32_t i = 0; i < h->string_count; ++i) {
    views[i].data = bytes + strings[i].offset;
    views[i].length = strings[i].length;
  }
  auto* module = reinterpret_cast<bytecode::VmModule*>(h->agent_private);
  module->maps = area<const bytecode::VmMapInfo>(h, h->vm_maps);
  module->map_count = h->map_count;
  module->formats = area<const bytecode::VmFormatInfo>(h, h->vm_formats);
  module->format_count = h->format_count;
  module->strings = views;
  module->string_count = h->string_count;
}

} // namespace

bool ensure_prepared(RegionHeader* h) {
  const uint32_t state = load_acquire(&h->module_state);
  if (state == abi::kModuleReady) return true;
  if (state == abi::kModuleInvalid) return false;
  if (!validate(h)) {
    store_release(&h->module_state, static_cast<uint32_t>(abi::kModuleInvalid));
    return false;
  }
  build_module(h);
  store_release(&h->module_state, static_cast<uint32_t>(abi::kModuleReady));
  return true;
}

const bytecode::VmModule& prepared_module(RegionHeader* h) {
  return *reinterpret_cast<const bytecode::VmModule*>(h->agent_private);
}

void count_event(uint64_t* counter) {
  fetch_add(counter, uint64_t{1});
}

} // namespace dprobe::agent::blob
