#include "probes/loader_watch.h"

#include <elf.h>
#include <link.h>

#include <cstddef>
#include <vector>

#include "elf/elf_file.h"
#include "process/auxv.h"

namespace dprobe::probes {
namespace {

Result<uint64_t> read_word(const TargetReader& read_target, uint64_t address) {
  uint64_t word = 0;
  if (auto st = read_target(address, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&word),
                                                        sizeof word));
      !st) {
    return std::unexpected(st.error());
  }
  return word;
}

}  // namespace

Result<LoaderRendezvous> find_loader_rendezvous(pid_t pid, std::span<const process::Mapping> maps,
                                                const TargetReader& read_target) {
  auto auxv = process::read_auxv(pid);
  if (!auxv) return std::unexpected(auxv.error());
  auto base = process::aux_value(*auxv, AT_BASE);
  if (!base || *base == 0) {
    return fail("process {} has no dynamic loader (statically linked?)", pid);
  }
  const process::Mapping* first = nullptr;
  for (const auto& m : maps) {
    if (m.start == *base && !m.path.empty()) first = &m;
  }
  if (first == nullptr) return fail("process {}: no mapping at its loader's base {:#x}", pid, *base);
  auto file = elf::ElfFile::open(first->path);
  if (!file) return std::unexpected(file.error());
  auto bias = (*file)->load_bias(first->start, first->offset);
  if (!bias) return std::unexpected(bias.error());

  LoaderRendezvous rendezvous;
  rendezvous.loader = first->path;
  if (const elf::Symbol* r_debug = (*file)->find_symbol("_r_debug"); r_debug != nullptr) {
    rendezvous.r_debug = *bias + r_debug->address;
    auto r_brk = read_word(read_target, rendezvous.r_debug + offsetof(struct r_debug, r_brk));
    if (r_brk && *r_brk != 0) rendezvous.r_brk = *r_brk;
  }
  if (rendezvous.r_brk == 0) {
    const elf::Symbol* state = (*file)->find_symbol("_dl_debug_state");
    if (state == nullptr) {
      return fail("{}: no _dl_debug_state or _r_debug to watch library loads with", first->path);
    }
    rendezvous.r_brk = *bias + state->address;
  }
  return rendezvous;
}

Result<ProbeSite> loader_breakpoint_site(const LoaderRendezvous& rendezvous,
                                         std::span<const process::Mapping> maps,
                                         const TargetReader& read_target) {
  ProbeSite site;
  site.probe_names.push_back("loader:_dl_debug_state");
  site.file_path = rendezvous.loader;
  for (const auto& m : maps) {
    if (m.contains(rendezvous.r_brk)) site.file_path = m.path;  // as forget_unmapped compares
  }
  site.function = "_dl_debug_state";
  site.address = rendezvous.r_brk;
  // From the process: usually a lone `ret`, whatever it is it is stepped out of line.
  std::vector<uint8_t> bytes(16);
  if (auto st = read_target(site.address, bytes); !st) {
    bytes.resize(1);  // at the end of a mapping: a 1-byte ret still decodes
    if (auto again = read_target(site.address, bytes); !again) return std::unexpected(again.error());
  }
  auto insn = x86_64::decode(bytes, site.address);
  if (!insn) return with_context(insn.error(), "the loader's _dl_debug_state");
  site.instruction = *insn;
  site.mechanism = Mechanism::Int3Ptrace;
  site.mechanism_reason = "dprobe arms probes of libraries the loader maps here";
  return site;
}

LoaderState read_loader_state(const LoaderRendezvous& rendezvous, const TargetReader& read_target) {
  if (rendezvous.r_debug == 0) return LoaderState::Unknown;
  auto word = read_word(read_target, rendezvous.r_debug + offsetof(struct r_debug, r_state));
  if (!word) return LoaderState::Unknown;
  switch (static_cast<uint32_t>(*word)) {
    case r_debug::RT_CONSISTENT: return LoaderState::Consistent;
    case r_debug::RT_ADD: return LoaderState::Adding;
    case r_debug::RT_DELETE: return LoaderState::Deleting;
    default: return LoaderState::Unknown;
  }
}

}  // namespace dprobe::probes
