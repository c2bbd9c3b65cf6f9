// The unwind tables of one process: rows for every executable file it maps (stacks/cfi_rows.h),
// placed at the addresses it maps them. dprobe walks int3-ptrace hits' stacks with them and
// publishes them into the agent's region, which walks every other hit's.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi/unwind.h"
#include "elf/elf_file.h"
#include "process/maps.h"
#include "stacks/cfi_rows.h"

namespace dprobe::stacks {

/// Rows per file, read once for every process that maps the file. Not thread-safe.
class CfiRowCache {
 public:
  struct Entry {
    std::shared_ptr<const elf::ElfFile> file;
    std::shared_ptr<const CfiRows> rows; ///< null when the file has none the walk can use
    std::string error;                   ///< why rows is null
  };
  /// The rows of `path` (opened by path; `inode` tells a replaced file apart).
  const Entry& get(const std::string& path, ino_t inode);

 private:
  std::map<std::pair<std::string, ino_t>, Entry> entries_;
};

class ProcessUnwindTables {
 public:
  explicit ProcessUnwindTables(std::shared_ptr<CfiRowCache> cache = nullptr);

  /// Adds every executable file mapping of `maps` not added before (call again after dlopen
  /// or exec: modules are only ever appended, a newer one shadowing an older one at the same
  /// addresses). Returns a note per file it could not use ("" entries never).
  std::vector<std::string> update(const std::vector<process::Mapping>& maps);

  [[nodiscard]] const std::vector<abi::UnwindModule>& modules() const { return modules_; }
  [[nodiscard]] const std::vector<abi::UnwindRow>& rows() const { return rows_; }
  /// A view for abi::walk_stack; valid until the next update().
  [[nodiscard]] abi::UnwindView view() const {
    return abi::UnwindView{modules_.data(), static_cast<uint32_t>(modules_.size()), rows_.data(),
                           static_cast<uint32_t>(rows_.size())};
  }

 private:
  std::shared_ptr<CfiRowCache> cache_;
  std::vector<abi::UnwindModule> modules_;
  std::vector<abi::UnwindRow> rows_;
  /// (start, inode) of every mapping added.
  std::vector<std::pair<uint64_t, ino_t>> added_;
};

} // namespace dprobe::stacks
