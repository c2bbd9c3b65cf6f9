#include "stacks/stack_store.h"

#include <algorithm>

#include "process/maps.h"

namespace dprobe::stacks {

StackStore::StackStore(std::shared_ptr<elf::SymbolFiles> files)
    : files_(files != nullptr ? std::move(files) : std::make_shared<elf::SymbolFiles>()) {}

void StackStore::add(uint64_t id, uint32_t pid, std::span<const uint64_t> frames) {
  auto [it, inserted] = stacks_.try_emplace(id);
  if (!inserted) return;
  it->second.pid = pid;
  it->second.frames.assign(frames.begin(), frames.end());
  auto known = processes_.find(static_cast<pid_t>(pid));
  // A frame outside every mapping seen: a library mapped since the snapshot.
  const bool stale = known == processes_.end() ||
                     std::any_of(frames.begin(), frames.end(), [&](uint64_t address) {
                       return !covered(known->second, address);
                     });
  if (stale) note_mappings(static_cast<pid_t>(pid));
  if (processes_.contains(static_cast<pid_t>(pid))) return;
  // Gone before dprobe read its mappings (a short-lived fork child): a fork child maps what its
  // parent mapped, so a process whose mappings hold every frame names them.
  for (auto& [other, names] : processes_) {
    if (std::all_of(frames.begin(), frames.end(),
                    [&](uint64_t address) { return covered(names, address); })) {
      ProcessNames copy;
      set_files(copy, names.files);
      processes_[static_cast<pid_t>(pid)] = std::move(copy);
      return;
    }
  }
}

void StackStore::set_files(ProcessNames& names, std::vector<elf::MappedFile> files) {
  for (const elf::MappedFile& old : names.files) {
    const bool overlapped = std::any_of(files.begin(), files.end(), [&](const elf::MappedFile& f) {
      return f.start < old.end && old.start < f.end;
    });
    if (!overlapped) files.push_back(old);
  }
  std::sort(files.begin(), files.end(),
            [](const elf::MappedFile& a, const elf::MappedFile& b) { return a.start < b.start; });
  names.ranges.clear();
  for (const elf::MappedFile& f : files) {
    if (f.executable) names.ranges.emplace_back(f.start, f.end);
  }
  names.files = files;
  names.symbolizer = std::make_unique<elf::ProcessSymbolizer>(std::move(files), files_);
}

void StackStore::absorb(StackStore& other) {
  stacks_.merge(other.stacks_);
  for (auto& [pid, names] : other.processes_) {
    if (!processes_.contains(pid)) processes_[pid] = std::move(names);
  }
  other.stacks_.clear();
  other.processes_.clear();
}

bool StackStore::covered(const ProcessNames& names, uint64_t address) {
  auto after = std::upper_bound(names.ranges.begin(), names.ranges.end(), address,
                                [](uint64_t a, const auto& range) { return a < range.first; });
  return after != names.ranges.begin() && address < (after - 1)->second;
}

void StackStore::note_mappings(pid_t pid) {
  auto maps = process::read_maps(pid);
  if (!maps) return; // gone: keep the last snapshot
  std::vector<elf::MappedFile> files;
  for (const process::Mapping& m : *maps) {
    if (m.path.empty() || m.path[0] != '/') continue;
    files.push_back(elf::MappedFile{m.start, m.end, m.offset, m.path, m.executable, m.inode});
  }
  if (files.empty()) return; // a zombie's maps are empty: keep what was seen before
  set_files(processes_[pid], std::move(files));
}

std::string StackStore::stack_text(uint64_t id, bytecode::FieldKind kind, size_t indent) {
  const elf::StackMode mode =
      kind == bytecode::FieldKind::UStackPerf ? elf::StackMode::perf : elf::StackMode::bpftrace;
  if (id == 0) return "\n";
  auto it = stacks_.find(id);
  if (it == stacks_.end() && source_) {
    source_();
    it = stacks_.find(id);
  }
  if (it == stacks_.end()) {
    return mode == elf::StackMode::perf ? "\n\t0 [unknown] ([unknown])\n"
                                        : "\n" + std::string(indent, ' ') + "[unknown]\n";
  }
  auto names = processes_.find(static_cast<pid_t>(it->second.pid));
  if (names == processes_.end()) {
    elf::ProcessSymbolizer nameless({}, files_);
    return nameless.ustack(it->second.frames, mode, indent);
  }
  return names->second.symbolizer->ustack(it->second.frames, mode, indent);
}

} // namespace dprobe::stacks
