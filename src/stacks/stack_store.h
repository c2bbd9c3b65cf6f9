// Every stack the probes captured, by id (abi::stack_id), and their names: the stack_text the
// printers ask for (output/stack_formatter.h). Stacks come from the controller's own walks
// (int3-ptrace hits) and from the agents' stack tables, read back from their regions.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "elf/symbolizer.h"
#include "output/stack_formatter.h"

namespace dprobe::stacks {

class StackStore final : public output::StackFormatter {
 public:
  explicit StackStore(std::shared_ptr<elf::SymbolFiles> files = nullptr);

  /// A captured stack (frames[0] the probed instruction). The first stack of a process takes
  /// a snapshot of its mappings, so that its frames still have names after it exits.
  void add(uint64_t id, uint32_t pid, std::span<const uint64_t> frames);
  [[nodiscard]] bool contains(uint64_t id) const { return stacks_.contains(id); }
  [[nodiscard]] size_t size() const { return stacks_.size(); }

  /// Asked to add the stacks recorded since (an agent's table) when stack_text meets an id it
  /// does not know yet; null: no source.
  void set_source(std::function<void()> source) { source_ = std::move(source); }

  /// Takes over another store's stacks and mapping snapshots (a machine-wide run's process
  /// sessions each have one); `other` is left empty.
  void absorb(StackStore& other);

  /// Takes (or adds to) the snapshot of process `pid`'s mappings now, while it is alive:
  /// after arming, and after a library was mapped.
  void note_mappings(pid_t pid);

  /// bpftrace's text of stack `id`; an id no table held (its stack table was full) prints as a
  /// stack of one "[unknown]" frame.
  [[nodiscard]] std::string stack_text(uint64_t id, bytecode::FieldKind kind,
                                       size_t indent) override;

 private:
  struct Stack {
    uint32_t pid = 0;
    std::vector<uint64_t> frames;
  };
  struct ProcessNames {
    std::vector<elf::MappedFile> files; ///< every file mapping seen, newest winning overlaps
    std::unique_ptr<elf::ProcessSymbolizer> symbolizer;
    std::vector<std::pair<uint64_t, uint64_t>> ranges; ///< executable file mappings, sorted
  };
  [[nodiscard]] static bool covered(const ProcessNames& names, uint64_t address);
  /// `files` replacing what `names` knew where they overlap; older mappings elsewhere stay (a
  /// library dlclose'd since still names the frames captured while it was there).
  void set_files(ProcessNames& names, std::vector<elf::MappedFile> files);

  std::shared_ptr<elf::SymbolFiles> files_;
  std::function<void()> source_;
  std::unordered_map<uint64_t, Stack> stacks_;
  std::map<pid_t, ProcessNames> processes_;
};

} // namespace dprobe::stacks
