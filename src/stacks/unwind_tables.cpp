#include "stacks/unwind_tables.h"

#include <algorithm>

#include <fmt/format.h>

#include "elf/elf_file.h"

namespace dprobe::stacks {

const CfiRowCache::Entry& CfiRowCache::get(const std::string& path, ino_t inode) {
  auto [it, inserted] = entries_.try_emplace({path, inode});
  if (inserted) {
    auto file = elf::ElfFile::open(path);
    if (!file) {
      it->second.error = file.error().text();
      return it->second;
    }
    it->second.file = std::move(*file);
    if (auto rows = read_cfi_rows(*it->second.file); !rows) {
      it->second.error = rows.error().text();
    } else if (rows->rows.empty()) {
      it->second.error = "no call-frame information";
    } else {
      it->second.rows = std::make_shared<const CfiRows>(std::move(*rows));
    }
  }
  return it->second;
}

ProcessUnwindTables::ProcessUnwindTables(std::shared_ptr<CfiRowCache> cache)
    : cache_(cache != nullptr ? std::move(cache) : std::make_shared<CfiRowCache>()) {}

std::vector<std::string> ProcessUnwindTables::update(const std::vector<process::Mapping>& maps) {
  std::vector<std::string> notes;
  for (const process::Mapping& m : maps) {
    if (!m.executable || m.path.empty() || m.path[0] != '/' || m.deleted) continue;
    const std::pair<uint64_t, ino_t> identity{m.start, m.inode};
    if (std::find(added_.begin(), added_.end(), identity) != added_.end()) continue;
    added_.push_back(identity);
    const CfiRowCache::Entry& entry = cache_->get(m.path, m.inode);
    if (entry.rows == nullptr) {
      notes.push_back(
          fmt::format("ustack: {}: frames there follow the frame pointer ({})", m.path, entry.error));
      continue;
    }
    auto bias = entry.file->load_bias(m.start, m.offset);
    if (!bias) continue;
    const CfiRows* rows = entry.rows.get();
    abi::UnwindModule module{};
    module.start = m.start;
    module.end = m.end;
    module.bias = *bias;
    module.first_row = static_cast<uint32_t>(rows_.size());
    module.row_count = static_cast<uint32_t>(rows->rows.size());
    rows_.insert(rows_.end(), rows->rows.begin(), rows->rows.end());
    modules_.push_back(module);
  }
  return notes;
}

} // namespace dprobe::stacks
