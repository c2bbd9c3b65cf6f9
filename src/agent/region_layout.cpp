#include "agent/region_layout.h"

#include "abi/unwind.h"

#include <algorithm>
#include <bit>
#include <optional>
#include <cstring>

#include "bytecode/isa.h"
#include "bytecode/vm.h"

namespace dprobe::agent {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kMaxTableCapacity = 1u << 24;

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

/// Hands out consecutive aligned areas.
class AreaCursor {
 public:
  abi::AreaRef take(uint64_t size) {
    next_ = align_up(next_, abi::kAreaAlign);
    const abi::AreaRef ref{next_, size};
    next_ += size;
    return ref;
  }
  [[nodiscard]] uint64_t end() const { return next_; }

 private:
  uint64_t next_ = abi::kHeaderAreaSize;
};

MapLayout plan_map(const bytecode::Module& module, uint32_t id, const RegionOptions& options) {
  const bytecode::MapSchema& schema = module.maps[id];
  MapLayout map;
  map.key_size = schema.key_size();
  map.mode = map_mode(module, id);
  map.value_kind = schema.value;
  map.value_words = std::max<uint32_t>(schema.value_words(), 1);
  if (map.key_size == 0) {
    map.capacity = 1;
    map.max_entries = 1;
    return map;
  }
  // Load factor at most 1/2 when the map is full, so a miss never scans far.
  const uint64_t wanted = std::bit_ceil(std::max<uint64_t>(schema.max_entries, 1) * 2);
  const uint64_t limit = std::bit_floor(
      std::max<uint64_t>(std::min<uint64_t>(options.max_table_capacity, kMaxTableCapacity), 2));
  map.capacity = static_cast<uint32_t>(std::min(wanted, limit));
  map.max_entries = std::min<uint32_t>(schema.max_entries, map.capacity / 4 * 3);
  return map;
}

bool area_ok(const abi::AreaRef& a, uint64_t need, uint64_t region_size) {
  return a.offset % abi::kAreaAlign == 0 && a.offset >= abi::kHeaderAreaSize &&
         a.offset <= region_size && a.size <= region_size - a.offset && need <= a.size;
}

} // namespace

bool captures_stacks(const bytecode::Module& module) {
  for (const bytecode::Program& program : module.programs) {
    for (const bytecode::Insn& insn : program.code) {
      if (insn.op == bytecode::Op::UStack) return true;
    }
  }
  return false;
}

abi::MapMode map_mode(const bytecode::Module& module, uint32_t map_id) {
  for (const bytecode::Program& program : module.programs) {
    for (const bytecode::Insn& insn : program.code) {
      if (insn.aux != map_id) continue;
      switch (insn.op) {
      case bytecode::Op::MapLookup:
      case bytecode::Op::MapDelete:
        return abi::kMapShared;
      case bytecode::Op::MapUpdate:
        if (insn.b != static_cast<uint8_t>(bytecode::UpdateOp::Add) &&
            insn.b != static_cast<uint8_t>(bytecode::UpdateOp::Max) &&
            insn.b != static_cast<uint8_t>(bytecode::UpdateOp::Avg) &&
            insn.b != static_cast<uint8_t>(bytecode::UpdateOp::Bucket)) {
          return abi::kMapShared;
        }
        break;
      default:
        break;
      }
    }
  }
  return abi::kMapSharded;
}

uint32_t program_context_flags(const bytecode::Program& program) {
  uint32_t flags = 0;
  for (const bytecode::Insn& insn : program.code) {
    if (insn.op == bytecode::Op::LoadCtx) {
      switch (static_cast<bytecode::CtxField>(insn.aux)) {
      case bytecode::CtxField::Pid:
        flags |= abi::kNeedsPid;
        break;
      case bytecode::CtxField::Tid:
        flags |= abi::kNeedsTid;
        break;
      case bytecode::CtxField::Nsecs:
      case bytecode::CtxField::Elapsed:
        flags |= abi::kNeedsNsecs;
        break;
      case bytecode::CtxField::Uid:
      case bytecode::CtxField::Gid:
        flags |= abi::kNeedsIds;
        break;
      case bytecode::CtxField::Cpu:
        flags |= abi::kNeedsCpu;
        break;
      default:
        break;
      }
    } else if (insn.op == bytecode::Op::LoadCtxString) {
      flags |= abi::kNeedsComm;
    } else if (insn.op == bytecode::Op::ReadString || insn.op == bytecode::Op::ReadInt ||
               insn.op == bytecode::Op::ReadBuf || insn.op == bytecode::Op::UStack) {
      flags |= abi::kNeedsPid; // process_vm_readv names our own pid: cache it per thread
    }
  }
  return flags;
}

namespace {

bool is_count_update(const bytecode::Insn& load_one, const bytecode::Insn& update,
                     const MapLayout& map, uint32_t frame_size) {
  return load_one.op == bytecode::Op::LoadImm && load_one.imm == 1 &&
         load_one.dst < bytecode::kNumRegisters && update.op == bytecode::Op::MapUpdate &&
         update.a == load_one.dst && update.b == static_cast<uint8_t>(bytecode::UpdateOp::Add) &&
         update.imm <= frame_size && map.key_size <= frame_size - update.imm &&
         map.mode == abi::kMapSharded && map.value_words == 1;
}

/// The map `@m = count()` alone updates, when `code` is exactly that program.
std::optional<uint32_t> count_only_map(const std::vector<bytecode::Insn>& code) {
  if (code.size() != 3 || code[2].op != bytecode::Op::Ret) return std::nullopt;
  const bytecode::Insn& load = code[0];
  const bytecode::Insn& update = code[1];
  if (load.op != bytecode::Op::LoadImm || load.imm != 1 || update.op != bytecode::Op::MapUpdate ||
      update.a != load.dst || update.b != static_cast<uint8_t>(bytecode::UpdateOp::Add)) {
    return std::nullopt;
  }
  return update.aux;
}

/// Whether `op` never names a map. A whitelist: an opcode added later counts as touching every
/// map until it is listed here, so a new way to read or clear a map cannot silently miss the
/// hit counters.
bool touches_no_map(bytecode::Op op) {
  using bytecode::Op;
  switch (op) {
  case Op::MapLookup:
  case Op::MapUpdate:
  case Op::MapDelete:
    return false;
  case Op::Nop: case Op::Ret: case Op::Exit: case Op::LoadImm: case Op::Mov: case Op::Add:
  case Op::Sub: case Op::Mul: case Op::UDiv: case Op::UMod: case Op::SDiv: case Op::SMod:
  case Op::And: case Op::Or: case Op::Xor: case Op::Shl: case Op::LShr: case Op::AShr:
  case Op::Eq: case Op::Ne: case Op::ULt: case Op::ULe: case Op::UGt: case Op::UGe:
  case Op::SLt: case Op::SLe: case Op::SGt: case Op::SGe: case Op::Neg: case Op::Not:
  case Op::LNot: case Op::LoadCtx: case Op::Load64: case Op::Store64: case Op::LoadString:
  case Op::LoadCtxString: case Op::ReadString: case Op::Copy: case Op::StrEq: case Op::Jump:
  case Op::JumpIfZero: case Op::JumpIfNotZero: case Op::Printf: case Op::HistIndex:
  case Op::UStack:
  case Op::Loop: case Op::Extend: case Op::ReadInt: case Op::ReadBuf:
    return true;
  default:
    return false;
  }
}

} // namespace

std::vector<bool> hit_counted_maps(const bytecode::Module& module) {
  std::vector<bool> counted(module.maps.size(), true);
  for (uint32_t id = 0; id < module.maps.size(); ++id) {
    const bytecode::MapSchema& map = module.maps[id];
    if (!map.key.empty() || map.value != bytecode::MapValueKind::Count) counted[id] = false;
  }
  for (const bytecode::Program& program : module.programs) {
    if (count_only_map(program.code)) continue;
    for (const bytecode::Insn& insn : program.code) {
      if (touches_no_map(insn.op)) continue;
      const bool names_one = insn.op == bytecode::Op::MapLookup ||
                             insn.op == bytecode::Op::MapUpdate ||
                             insn.op == bytecode::Op::MapDelete;
      if (names_one && insn.aux < counted.size()) {
        counted[insn.aux] = false;
      } else {
        std::fill(counted.begin(), counted.end(), false);
      }
    }
  }
  return counted;
}

FastPathInfo fast_path(const bytecode::Program& program, const RegionLayout& layout) {
  const std::vector<bytecode::Insn>& c = program.code;
  const auto map_of = [&](const bytecode::Insn& update) -> const MapLayout* {
    return update.aux < layout.maps.size() ? &layout.maps[update.aux] : nullptr;
  };
  if (program.frame_size > bytecode::kMaxFrameSize) return {};
  if (c.size() == 3 && c[2].op == bytecode::Op::Ret) {
    const MapLayout* map = map_of(c[1]);
    if (map != nullptr && map->key_size == 0 && map->capacity == 1 &&
        is_count_update(c[0], c[1], *map, program.frame_size)) {
      return {map->hit_counted ? abi::kFastHitCount : abi::kFastCount, c[1].aux, 0};
    }
  }
  if (c.size() == 5 && c[4].op == bytecode::Op::Ret) {
    const MapLayout* map = map_of(c[3]);
    const uint32_t arg0 = static_cast<uint32_t>(bytecode::CtxField::Arg0);
    if (map != nullptr && map->key_size == 8 && c[0].op == bytecode::Op::LoadCtx &&
        c[0].dst < bytecode::kNumRegisters && c[0].aux >= arg0 &&
        c[0].aux <= static_cast<uint32_t>(bytecode::CtxField::Arg5) &&
        c[1].op == bytecode::Op::Store64 && c[1].a == c[0].dst && c[1].imm == c[3].imm &&
        is_count_update(c[2], c[3], *map, program.frame_size)) {
      return {abi::kFastCountByArg, c[3].aux, c[0].aux - arg0};
    }
  }
  return {};
}

Result<RegionLayout> plan_region(const bytecode::Module& module, uint32_t probe_count,
                                 const RegionOptions& options) {
  RegionLayout layout;
  layout.probe_capacity = std::max(options.probe_capacity, probe_count);
  uint64_t code_length = 0;
  for (const bytecode::Program& program : module.programs) {
    if (program.code.size() > bytecode::kMaxProgramLength ||
        program.frame_size > bytecode::kMaxFrameSize) {
      return fail("agent region: program '{}' is too large ({} instructions, {} frame bytes)",
                  program.name, program.code.size(), program.frame_size);
    }
    code_length += program.code.size();
  }
  if (code_length > UINT32_MAX / sizeof(bytecode::Insn) || module.maps.size() > (1u << 20) ||
      module.formats.size() > abi::kRecordFormatMask || module.strings.size() > (1u << 20) ||
      module.programs.size() > (1u << 20)) {
    return fail("agent region: the script is too large for the agent");
  }
  if (options.ring_bytes < 4096 || !std::has_single_bit(options.ring_bytes) ||
      options.ring_bytes > (1ull << 32)) {
    return fail("agent region: ring size {} is not a power of two between 4096 and 4 GiB",
                options.ring_bytes);
  }
  if (options.thread_slots > (1u << 20) || options.scratch_states > 4096 ||
      layout.probe_capacity > (1u << 20)) {
    return fail("agent region: too many thread slots, scratch states or probes");
  }
  layout.program_count = static_cast<uint32_t>(module.programs.size());
  layout.code_length = static_cast<uint32_t>(code_length);
  layout.map_count = static_cast<uint32_t>(module.maps.size());
  layout.format_count = static_cast<uint32_t>(module.formats.size());
  layout.string_count = static_cast<uint32_t>(module.strings.size());
  layout.thread_slot_count = options.thread_slots == 0 ? 0 : std::bit_ceil(options.thread_slots);
  layout.scratch_count = options.scratch_states;

  uint64_t string_bytes = 0;
  for (const std::string& s : module.strings)
    string_bytes += s.size() + 1;
  if (string_bytes > UINT32_MAX) return fail("agent region: constant strings too large");

  AreaCursor cursor;
  layout.probes = cursor.take(uint64_t{layout.probe_capacity} * sizeof(abi::ProbeEntry));
  layout.trap_index[0] = cursor.take(uint64_t{layout.probe_capacity} * sizeof(abi::TrapIndexEntry));
  layout.trap_index[1] = cursor.take(uint64_t{layout.probe_capacity} * sizeof(abi::TrapIndexEntry));
  layout.programs = cursor.take(uint64_t{layout.program_count} * sizeof(abi::ProgramDesc));
  layout.code = cursor.take(code_length * sizeof(bytecode::Insn));
  layout.vm_maps = cursor.take(uint64_t{layout.map_count} * sizeof(bytecode::VmMapInfo));
  layout.vm_formats = cursor.take(uint64_t{layout.format_count} * sizeof(bytecode::VmFormatInfo));
  layout.map_descs = cursor.take(uint64_t{layout.map_count} * sizeof(abi::MapDesc));
  layout.string_descs = cursor.take(uint64_t{layout.string_count} * sizeof(abi::StringDesc));
  layout.string_views = cursor.take(uint64_t{layout.string_count} * sizeof(bytecode::VmString));
  layout.string_bytes = cursor.take(string_bytes);
  layout.thread_slots = cursor.take(uint64_t{layout.thread_slot_count} * sizeof(abi::ThreadSlot));
  layout.scratch = cursor.take(uint64_t{layout.scratch_count} * sizeof(abi::ScratchState));
  layout.ring = cursor.take(sizeof(abi::RingHeader) + options.ring_bytes);
  layout.arena = cursor.take(align_up(options.arena_bytes, abi::kAreaAlign));
  if (captures_stacks(module)) {
    if (options.stack_capacity == 0 || options.stack_capacity > (1u << 20) ||
        options.unwind_module_capacity > (1u << 16) || options.unwind_row_capacity > (1u << 24)) {
      return fail("agent region: bad stack table sizes");
    }
    layout.stack_capacity = std::bit_ceil(options.stack_capacity);
    layout.unwind_module_capacity = options.unwind_module_capacity;
    layout.unwind_row_capacity = options.unwind_row_capacity;
    layout.unwind_modules =
        cursor.take(uint64_t{layout.unwind_module_capacity} * sizeof(abi::UnwindModule));
    layout.unwind_rows = cursor.take(uint64_t{layout.unwind_row_capacity} * sizeof(abi::UnwindRow));
    layout.stacks = cursor.take(uint64_t{layout.stack_capacity} * sizeof(abi::StackEntry));
  }
  layout.size = align_up(cursor.end(), kPage);

  const std::vector<bool> counted = hit_counted_maps(module);
  for (uint32_t id = 0; id < layout.map_count; ++id) {
    layout.maps.push_back(plan_map(module, id, options));
    layout.maps.back().hit_counted = counted[id] && layout.maps.back().mode == abi::kMapSharded;
  }
  for (const bytecode::PrintfFormat& format : module.formats) {
    layout.format_sizes.push_back(format.args_size());
  }
  if (Status ok = validate_layout(layout, layout.size); !ok) return std::unexpected(ok.error());
  return layout;
}

Status validate_layout(const RegionLayout& l, uint64_t region_size) {
  if (region_size < abi::kHeaderAreaSize || l.size > region_size) {
    return fail("agent region: layout of {} bytes does not fit the region's {} bytes", l.size,
                region_size);
  }
  const uint64_t size = l.size;
  struct Check {
    const char* name;
    const abi::AreaRef& area;
    uint64_t need;
  };
  const Check checks[] = {
      {"probes", l.probes, uint64_t{l.probe_capacity} * sizeof(abi::ProbeEntry)},
      {"trap index", l.trap_index[0], 0},
      {"trap index", l.trap_index[1], 0},
      {"programs", l.programs, uint64_t{l.program_count} * sizeof(abi::ProgramDesc)},
      {"code", l.code, uint64_t{l.code_length} * sizeof(bytecode::Insn)},
      {"map infos", l.vm_maps, uint64_t{l.map_count} * sizeof(bytecode::VmMapInfo)},
      {"format infos", l.vm_formats, uint64_t{l.format_count} * sizeof(bytecode::VmFormatInfo)},
      {"map descriptors", l.map_descs, uint64_t{l.map_count} * sizeof(abi::MapDesc)},
      {"string descriptors", l.string_descs, uint64_t{l.string_count} * sizeof(abi::StringDesc)},
      {"string views", l.string_views, uint64_t{l.string_count} * sizeof(bytecode::VmString)},
      {"string bytes", l.string_bytes, 0},
      {"thread slots", l.thread_slots, uint64_t{l.thread_slot_count} * sizeof(abi::ThreadSlot)},
      {"scratch", l.scratch, uint64_t{l.scratch_count} * sizeof(abi::ScratchState)},
      {"ring", l.ring, sizeof(abi::RingHeader) + 64},
      {"arena", l.arena, 0},
      {"unwind modules", l.unwind_modules,
       uint64_t{l.unwind_module_capacity} * sizeof(abi::UnwindModule)},
      {"unwind rows", l.unwind_rows, uint64_t{l.unwind_row_capacity} * sizeof(abi::UnwindRow)},
      {"stacks", l.stacks, uint64_t{l.stack_capacity} * sizeof(abi::StackEntry)},
  };
  for (const Check& c : checks) {
    const bool absent = c.need == 0 && c.area.offset == 0 && c.area.size == 0 &&
                        (&c.area == &l.unwind_modules || &c.area == &l.unwind_rows ||
                         &c.area == &l.stacks);
    if (!absent && !area_ok(c.area, c.need, size)) {
      return fail("agent region: {} area [{:#x}, +{:#x}) is misplaced or too small", c.name,
                  c.area.offset, c.area.size);
    }
  }
  if (!std::has_single_bit(l.ring_capacity())) {
    return fail("agent region: ring capacity {} is not a power of two", l.ring_capacity());
  }
  if (l.stack_capacity != 0 && !std::has_single_bit(l.stack_capacity)) {
    return fail("agent region: {} stack entries is not a power of two", l.stack_capacity);
  }
  if (l.thread_slot_count != 0 && !std::has_single_bit(l.thread_slot_count)) {
    return fail("agent region: {} thread slots is not a power of two", l.thread_slot_count);
  }
  if (l.maps.size() != l.map_count || l.format_sizes.size() != l.format_count) {
    return fail("agent region: {} map layouts and {} format sizes for {} maps and {} formats",
                l.maps.size(), l.format_sizes.size(), l.map_count, l.format_count);
  }
  for (const MapLayout& m : l.maps) {
    if (!std::has_single_bit(m.capacity) || m.capacity > kMaxTableCapacity ||
        m.key_size > bytecode::kMaxFrameSize || m.mode > abi::kMapShared ||
        m.value_words == 0 || m.value_words > bytecode::kMaxValueWords ||
        m.value_kind >= bytecode::MapValueKind::kCount) {
      return fail("agent region: bad map layout (key {} bytes, capacity {}, {} value words)",
                  m.key_size, m.capacity, m.value_words);
    }
  }
  for (uint32_t bytes : l.format_sizes) {
    if (bytes > bytecode::kMaxFrameSize)
      return fail("agent region: printf record of {} bytes", bytes);
  }
  return {};
}

Result<RegionLayout> read_layout(std::span<const uint8_t> region) {
  if (region.size() < sizeof(abi::RegionHeader)) return fail("agent region: too small");
  abi::RegionHeader h; // one copy: the target may change the bytes while we look
  std::memcpy(&h, region.data(), sizeof h);
  if (h.magic != abi::kRegionMagic || h.version != abi::kRegionVersion ||
      h.header_size != sizeof(abi::RegionHeader)) {
    return fail("agent region: no dprobe region header (magic {:#x}, version {})", h.magic,
                h.version);
  }
  RegionLayout l;
  l.size = h.size;
  l.probe_capacity = h.probe_capacity;
  l.program_count = h.program_count;
  l.code_length = h.code_length;
  l.map_count = h.map_count;
  l.format_count = h.format_count;
  l.string_count = h.string_count;
  l.thread_slot_count = h.thread_slot_count;
  l.scratch_count = h.scratch_count;
  l.probes = h.probes;
  l.trap_index[0] = h.trap_index[0];
  l.trap_index[1] = h.trap_index[1];
  l.programs = h.programs;
  l.code = h.code;
  l.vm_maps = h.vm_maps;
  l.vm_formats = h.vm_formats;
  l.map_descs = h.map_descs;
  l.string_descs = h.string_descs;
  l.string_views = h.string_views;
  l.string_bytes = h.string_bytes;
  l.thread_slots = h.thread_slots;
  l.scratch = h.scratch;
  l.ring = h.ring;
  l.arena = h.arena;
  l.unwind_modules = h.unwind_modules;
  l.unwind_rows = h.unwind_rows;
  l.stacks = h.stacks;
  l.unwind_module_capacity = h.unwind_module_capacity;
  l.unwind_row_capacity = h.unwind_row_capacity;
  l.stack_capacity = h.stack_capacity;
  // Check the areas before reading the per-map and per-format tables out of them.
  const uint64_t map_count = l.map_count;
  const uint64_t format_count = l.format_count;
  l.map_count = 0;
  l.format_count = 0;
  if (Status ok = validate_layout(l, region.size()); !ok) return std::unexpected(ok.error());
  if (map_count * sizeof(abi::MapDesc) > l.map_descs.size ||
      format_count * sizeof(bytecode::VmFormatInfo) > l.vm_formats.size) {
    return fail("agent region: {} maps / {} formats do not fit their areas", map_count,
                format_count);
  }
  l.map_count = static_cast<uint32_t>(map_count);
  l.format_count = static_cast<uint32_t>(format_count);
  for (uint64_t i = 0; i < map_count; ++i) {
    abi::MapDesc d;
    std::memcpy(&d, region.data() + l.map_descs.offset + i * sizeof d, sizeof d);
    MapLayout m;
    m.key_size = d.key_size;
    m.capacity = d.capacity;
    m.max_entries = d.max_entries;
    m.mode = d.mode == abi::kMapSharded ? abi::kMapSharded : abi::kMapShared;
    // Out-of-range kinds and sizes are kept as read: validate_layout refuses them.
    m.value_kind = static_cast<bytecode::MapValueKind>(d.value_kind);
    m.value_words = d.value_words;
    l.maps.push_back(m);
  }
  for (uint64_t i = 0; i < format_count; ++i) {
    uint32_t bytes;
    std::memcpy(&bytes, region.data() + l.vm_formats.offset + i * sizeof bytes, sizeof bytes);
    l.format_sizes.push_back(bytes);
  }
  if (Status ok = validate_layout(l, region.size()); !ok) return std::unexpected(ok.error());
  return l;
}

} // namespace dprobe::agent
