#include "probes/site_resolver.h"

#include <climits>
#include <cstdlib>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "arch/x86_64/exit_finder.h"
#include "elf/library_resolver.h"
#include "elf/wildcard.h"

namespace dprobe::probes {
namespace {

// Lists instruction starts near `offset`, so a refusal shows where a probe could go.
std::string nearby_boundaries(std::span<const x86_64::Instruction> insns, uint64_t function_start,
                              uint64_t offset) {
  std::vector<std::string> parts;
  for (const auto& insn : insns) {
    uint64_t at = insn.address - function_start;
    if (at + 16 >= offset && parts.size() < 4) parts.push_back(fmt::format("+{}", at));
    if (at > offset) break;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

// On overlayfs /proc/PID/maps shows the underlying device while fstat shows the overlay's;
// the inode and path still agree there.
bool same_file(const process::Mapping& m, const elf::ElfFile& file) {
  return m.inode == file.inode() && !m.deleted &&
         (m.device == file.device() || m.path == file.path());
}

bool has_agent_region(std::span<const process::Mapping> maps) {
  return std::any_of(maps.begin(), maps.end(), [](const process::Mapping& m) {
    return m.path.find("memfd:dprobe-region") != std::string::npos;
  });
}

bool in_anonymous_code(uint64_t address, std::span<const process::Mapping> maps) {
  return std::any_of(maps.begin(), maps.end(), [&](const process::Mapping& m) {
    return address >= m.start && address < m.end && m.executable && m.path.empty();
  });
}

}  // namespace

// A dprobe killed with -9 leaves its patches armed (harmless: the agent keeps serving them).
// A new session recognises them, plans from the file's bytes, and restores those at the end:
// that is how restarting dprobe cleans up. Recognised only in a process that holds a dprobe
// region: a jmp rel32 into anonymous executable memory (a trampoline), or an int3 (served by
// the agent's SIGTRAP handler), with the rest of the instruction as in the file.
bool is_leftover_patch(std::span<const uint8_t> live, uint64_t address,
                       const x86_64::Instruction& original, std::span<const process::Mapping> maps) {
  if (!has_agent_region(maps) || live.empty()) return false;
  if (live[0] == 0xCC) {
    return std::equal(live.begin() + 1, live.begin() + original.length, original.bytes.begin() + 1);
  }
  if (live[0] == 0xE9 && live.size() >= 5) {
    int32_t rel = 0;
    std::memcpy(&rel, live.data() + 1, sizeof rel);
    return in_anonymous_code(address + 5 + static_cast<int64_t>(rel), maps);
  }
  return false;
}

SiteResolver::SiteResolver(std::string working_directory)
    : working_directory_(std::move(working_directory)) {}

Result<std::string> SiteResolver::absolute(const std::string& path) const {
  // As bpftrace finds it: a path with '/' as written, a bare name as a program in the current
  // directory or PATH, or a library ("libc") in the process's maps, ld.so.cache, lib dirs.
  auto found = elf::resolve_probe_path(path, pid_ != 0 ? std::optional<pid_t>(pid_) : std::nullopt,
                                       working_directory_);
  if (!found) return std::unexpected(found.error());
  // /proc/PID/maps names files with symlinks resolved.
  char resolved[PATH_MAX];
  if (::realpath(found->c_str(), resolved) != nullptr) return std::string(resolved);
  return *found;
}

Result<const elf::ElfFile*> SiteResolver::open_file(const std::string& path) {
  auto absolute_path = absolute(path);
  if (!absolute_path) return std::unexpected(absolute_path.error());
  const std::string& abs = *absolute_path;
  auto it = files_.find(abs);
  if (it != files_.end()) return it->second.get();
  auto file = elf::ElfFile::open(abs);
  if (!file) return std::unexpected(file.error());
  const elf::ElfFile* raw = file->get();
  files_.emplace(abs, std::move(*file));
  return raw;
}

Result<FileLocation> SiteResolver::locate(const lang::AttachPoint& ap) {
  auto file = open_file(ap.path);
  if (!file) return std::unexpected(file.error());
  const elf::ElfFile& elf = **file;

  FileLocation loc;
  loc.file_path = elf.path();
  const elf::Symbol* function = nullptr;
  elf::Symbol resolved_symbol;
  if (ap.address) {
    loc.file_vaddr = *ap.address;
    function = elf.function_containing(loc.file_vaddr);
  } else {
    auto sym = elf.resolve_function(ap.symbol);
    if (!sym) return std::unexpected(sym.error());
    resolved_symbol = *sym;
    function = &resolved_symbol;
    if (sym->size != 0 && ap.offset >= sym->size) {
      return fail("{}: offset {} is beyond the end of {} ({} bytes)", ap.raw, ap.offset,
                  sym->name, sym->size);
    }
    loc.file_vaddr = sym->address + ap.offset;
  }

  if (function != nullptr && function->size != 0) {
    loc.function = function->name;
    loc.function_offset = loc.file_vaddr - function->address;
    loc.function_size = function->size;
    // Decode the whole function from its start: a probe must sit on an instruction boundary,
    // or the int3 would corrupt the middle of an instruction.
    auto bytes = elf.read_at_vaddr(function->address, function->size);
    if (!bytes) return with_context(bytes.error(), ap.raw);
    loc.function_code = *bytes;
    auto insns = x86_64::decode_all(*bytes, function->address);
    std::span<const x86_64::Instruction> decoded;
    if (insns) decoded = *insns;
    auto hit = std::find_if(decoded.begin(), decoded.end(), [&](const auto& i) {
      return i.address == loc.file_vaddr;
    });
    if (hit == decoded.end()) {
      if (!insns && (decoded.empty() || decoded.back().address < loc.file_vaddr)) {
        return fail("{}: cannot decode {} up to offset {}: {}", ap.raw, function->name,
                    loc.function_offset, insns.error().message);
      }
      return fail("{}: offset {} is not on an instruction boundary of {} (instructions start at {})",
                  ap.raw, loc.function_offset, function->name,
                  nearby_boundaries(decoded, function->address, loc.function_offset));
    }
    loc.instruction = *hit;
  } else {
    if (function != nullptr) {
      loc.function = function->name;
      loc.function_offset = loc.file_vaddr - function->address;
    }
    auto bytes = elf.read_at_vaddr(loc.file_vaddr, 15);
    if (!bytes) return with_context(bytes.error(), ap.raw);
    auto insn = x86_64::decode(*bytes, loc.file_vaddr);
    if (!insn) return with_context(insn.error(), ap.raw);
    loc.instruction = *insn;
  }
  return loc;
}

Result<uint64_t> runtime_address(const elf::ElfFile& file, uint64_t file_vaddr, pid_t pid,
                                 std::span<const process::Mapping> maps) {
  auto offset = file.vaddr_to_file_offset(file_vaddr);
  if (!offset) return std::unexpected(offset.error());
  bool mapped_at_all = false;
  for (const auto& m : maps) {
    if (!same_file(m, file)) continue;
    mapped_at_all = true;
    if (*offset >= m.offset && *offset < m.offset + (m.end - m.start)) {
      if (!m.executable) {
        return fail("{}: address {:#x} is mapped without execute permission in process {}",
                    file.path(), file_vaddr, pid);
      }
      return m.start + (*offset - m.offset);
    }
  }
  if (mapped_at_all) {
    return fail("{}: file offset {:#x} is not mapped in process {}", file.path(), *offset, pid);
  }
  for (const auto& m : maps) {
    if (m.path == file.path()) {
      return fail("{}: file changed since process {} mapped it (the process runs {} copy)",
                  file.path(), pid, m.deleted ? "a deleted" : "another");
    }
  }
  return fail("{}: not mapped in process {}", file.path(), pid);
}

Result<bool> SiteResolver::is_mapped(const lang::AttachPoint& ap,
                                     std::span<const process::Mapping> maps) {
  auto file = open_file(ap.path);
  if (!file) return std::unexpected(file.error());
  return std::any_of(maps.begin(), maps.end(),
                     [&](const process::Mapping& m) { return same_file(m, **file); });
}

Result<std::vector<lang::AttachPoint>> SiteResolver::expand(const lang::AttachPoint& ap) {
  if (!elf::has_wildcard(ap.symbol)) return std::vector<lang::AttachPoint>{ap};
  auto file = open_file(ap.path);
  if (!file) return std::unexpected(file.error());
  std::vector<lang::AttachPoint> expanded;
  for (const elf::Symbol* symbol : (*file)->match_functions(ap.symbol)) {
    lang::AttachPoint one = ap;
    one.symbol = symbol->name;
    // The name bpftrace gives each match (its `probe` builtin, -v): the provider spelled out.
    one.raw = fmt::format("{}:{}:{}", ap.is_return ? "uretprobe" : "uprobe", ap.path, symbol->name);
    expanded.push_back(std::move(one));
  }
  if (expanded.empty()) {
    return fail("{}: no function matches '{}' in {}", ap.raw, ap.symbol, (*file)->path());
  }
  return expanded;
}

Status SiteResolver::resolve_one(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                  std::span<const process::Mapping> maps,
                                  const TargetReader& read_target, std::vector<ProbeSite>& sites,
                                  bool repeat_exit, const std::string& exit_note) {
  auto loc = locate(ap);
  if (!loc) return std::unexpected(loc.error());
  auto file = open_file(ap.path);
  if (!file) return std::unexpected(file.error());
  auto address = runtime_address(**file, loc->file_vaddr, pid, maps);
  if (!address) return with_context(address.error(), ap.raw);

  auto existing = std::find_if(sites.begin(), sites.end(),
                               [&](const ProbeSite& s) { return s.address == *address; });
  if (existing != sites.end()) {
    existing->repeat_exit.resize(existing->probe_names.size(), false);
    existing->probe_names.push_back(ap.raw);
    existing->repeat_exit.push_back(repeat_exit);
    existing->programs.push_back(program);
    if (!exit_note.empty() && existing->exit_note.empty()) existing->exit_note = exit_note;
    return {};
  }

  // The process must run exactly the bytes we planned from the file; otherwise the file
  // changed after the process mapped it, or someone else patched the code.
  const auto& insn = loc->instruction;
  std::vector<uint8_t> live(std::max<size_t>(insn.length, 5));
  if (auto st = read_target(*address, live); !st) {
    live.resize(insn.length);
    if (auto again = read_target(*address, live); !again) return with_context(again.error(), ap.raw);
  }
  if (!std::equal(live.begin(), live.begin() + insn.length, insn.bytes.begin()) &&
      !is_leftover_patch(live, *address, insn, maps)) {
    if (live[0] == 0xCC && insn.bytes[0] != 0xCC) {
      return fail("{}: process {} already has a breakpoint at {:#x} (another debugger?)",
                  ap.raw, pid, *address);
    }
    return fail("{}: {} changed since process {} mapped it (code at {:#x} differs from the "
                "file)",
                ap.raw, loc->file_path, pid, *address);
  }

  ProbeSite site;
  site.probe_names.push_back(ap.raw);
  site.repeat_exit.push_back(repeat_exit);
  site.exit_note = exit_note;
  site.programs.push_back(program);
  site.file_path = loc->file_path;
  site.function = loc->function;
  site.function_offset = loc->function_offset;
  site.function_size = loc->function_size;
  site.function_code = loc->function_code;
  site.file_vaddr = loc->file_vaddr;
  site.address = *address;
  // Decode again at the run-time address so branch targets and RIP-relative operands
  // are absolute addresses in the process.
  // (From the file's bytes: the process may still hold a patch a killed dprobe left.)
  auto at_runtime = x86_64::decode(std::span<const uint8_t>(insn.bytes.data(), insn.length), *address);
  if (!at_runtime) return with_context(at_runtime.error(), ap.raw);
  site.instruction = *at_runtime;
  sites.push_back(std::move(site));
  return {};
}

Result<SiteResolver::ReturnSites> SiteResolver::return_sites(const lang::AttachPoint& ap) {
  auto file = open_file(ap.path);
  if (!file) return std::unexpected(file.error());
  const elf::ElfFile& elf = **file;
  auto symbol = elf.resolve_function(ap.symbol);
  if (!symbol) return std::unexpected(symbol.error());
  if (symbol->size == 0) {
    return fail("{}: the size of {} is unknown, so its exits cannot be found", ap.raw,
                symbol->name);
  }
  // The body, then GCC's hot/cold split parts: a branch into "F.cold" stays inside F, and
  // the cold part's own exits are F's exits.
  std::vector<elf::Symbol> part_symbols{*symbol};
  for (const std::string& pattern : {symbol->name + ".cold", symbol->name + ".cold.*"}) {
    for (const elf::Symbol* cold : elf.match_functions(pattern)) {
      if (cold->size != 0) part_symbols.push_back(*cold);
    }
  }
  std::vector<std::vector<x86_64::Instruction>> decoded;
  std::vector<x86_64::FunctionPart> parts;
  decoded.reserve(part_symbols.size());
  for (const elf::Symbol& part : part_symbols) {
    auto bytes = elf.read_at_vaddr(part.address, part.size);
    if (!bytes) return with_context(bytes.error(), ap.raw);
    auto insns = x86_64::decode_all(*bytes, part.address);
    if (!insns) {
      return fail("{}: cannot decode {} to find its exits: {}", ap.raw, part.name,
                  insns.error().message);
    }
    decoded.push_back(std::move(*insns));
    parts.push_back({decoded.back(), part.address, part.address + part.size});
  }
  auto scan = x86_64::find_exits(parts);
  if (!scan) return fail("{}: cannot probe the returns of {}: {}", ap.raw, symbol->name,
                         scan.error().message);
  ReturnSites result;
  for (const x86_64::ExitSite& exit : scan->exits) {
    const uint64_t at = exit.instruction.address;
    const auto owner = std::find_if(part_symbols.begin(), part_symbols.end(), [&](const auto& p) {
      return at >= p.address && at < p.address + p.size;
    });
    lang::AttachPoint one = ap;
    one.symbol = owner->name;
    one.offset = at - owner->address;
    result.exits.push_back(std::move(one));
    std::string note = fmt::format("exit {} of {} at {}+{}: {} '{}'", result.exits.size(),
                                   scan->exits.size(), owner->name, at - owner->address,
                                   x86_64::exit_kind_name(exit.kind), exit.instruction.text);
    for (const std::string& n : scan->notes) note += "; " + n;
    result.exit_notes.push_back(std::move(note));
  }
  return result;
}

Status SiteResolver::resolve_return(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                     std::span<const process::Mapping> maps,
                                     const TargetReader& read_target,
                                     std::vector<ProbeSite>& sites) {
  auto found = return_sites(ap);
  if (!found) return std::unexpected(found.error());
  for (size_t i = 0; i < found->exits.size(); ++i) {
    if (auto st = resolve_one(found->exits[i], program, pid, maps, read_target, sites, i > 0,
                              found->exit_notes[i]);
        !st) {
      return st;
    }
  }
  return {};
}

Status SiteResolver::resolve_point(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                   std::span<const process::Mapping> maps,
                                   const TargetReader& read_target,
                                   std::vector<ProbeSite>& sites) {
  if (ap.is_return) return resolve_return(ap, program, pid, maps, read_target, sites);
  return resolve_one(ap, program, pid, maps, read_target, sites);
}

void link_neighbours(std::vector<ProbeSite>& sites) {
  for (ProbeSite& site : sites) {
    site.neighbours.clear();
    if (site.function_size == 0) continue;
    const uint64_t start = site.address - site.function_offset;
    for (const ProbeSite& other : sites) {
      if (&other != &site && other.address >= start && other.address < start + site.function_size)
        site.neighbours.push_back(other.address);
    }
  }
}

Result<std::vector<ProbeSite>> SiteResolver::resolve(const lang::CompiledScript& script, pid_t pid,
                                                     std::span<const process::Mapping> maps,
                                                     const TargetReader& read_target,
                                                     std::vector<UprobePoint>* points) {
  std::vector<ProbeSite> sites;
  for (const auto& block : script.probes) {
    for (size_t point = 0; point < block.attach_points.size(); ++point) {
      const lang::AttachPoint& written = block.attach_points[point];
      if (written.kind != lang::ProbeKind::Uprobe) continue;
      auto expanded = expand(written);
      if (!expanded) return std::unexpected(expanded.error());
      for (const auto& ap : *expanded) {
        if (points != nullptr) {
          auto listed = list_point(ap, block.program_for(point), maps);
          if (!listed) return std::unexpected(listed.error());
          points->push_back(*listed);
          if (!listed->mapped) continue;  // armed when the loader maps its file
        }
        if (auto st = resolve_point(ap, block.program_for(point), pid, maps, read_target, sites);
            !st) {
          return std::unexpected(st.error());
        }
      }
    }
  }
  link_neighbours(sites);
  return sites;
}

Result<UprobePoint> SiteResolver::list_point(const lang::AttachPoint& ap, uint32_t program,
                                             std::span<const process::Mapping> maps) {
  // Located in the file now, so that a missing symbol or a bad offset is an error at start,
  // not a surprise when the library is loaded.
  auto loc = locate(ap);
  if (!loc) return std::unexpected(loc.error());
  UprobePoint point;
  point.ap = ap;
  point.program = program;
  point.file_path = loc->file_path;
  point.file_vaddr = loc->file_vaddr;
  // A mapping by the same path of another copy of the file (replaced on disk since) counts as
  // mapped: resolving it says the file changed, where waiting would wait forever.
  point.mapped = is_mapped(point, maps) ||
                 std::any_of(maps.begin(), maps.end(), [&](const process::Mapping& m) {
                   return m.path == point.file_path;
                 });
  return point;
}

bool SiteResolver::is_mapped(const UprobePoint& point, std::span<const process::Mapping> maps) {
  auto it = files_.find(point.file_path);
  if (it == files_.end()) return false;
  const elf::ElfFile& file = *it->second;
  return std::any_of(maps.begin(), maps.end(),
                     [&](const process::Mapping& m) { return same_file(m, file); });
}

Result<std::vector<ProbeSite>> SiteResolver::resolve_points(std::span<const UprobePoint> points,
                                                            pid_t pid,
                                                            std::span<const process::Mapping> maps,
                                                            const TargetReader& read_target) {
  std::vector<ProbeSite> sites;
  for (const UprobePoint& point : points) {
    if (auto st = resolve_point(point.ap, point.program, pid, maps, read_target, sites); !st) {
      return std::unexpected(st.error());
    }
  }
  link_neighbours(sites);
  return sites;
}

}  // namespace dprobe::probes
