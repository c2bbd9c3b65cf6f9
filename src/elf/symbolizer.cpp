#include "elf/symbolizer.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "elf/debug_file.h"

namespace dprobe::elf {

namespace {

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

SymbolizedAddress make_result(const Symbol& symbol, uint64_t vaddr) {
  return SymbolizedAddress{demangle(symbol.name), symbol.name, vaddr - symbol.address};
}

// An unnamed address as bpftrace prints it: `ostream << (void*)addr`, which is "0" for null.
std::string unknown_address(uint64_t address) {
  return address == 0 ? std::string("0") : fmt::format("{:#x}", address);
}

} // namespace

std::string demangle(std::string_view raw_name) {
  if (!raw_name.starts_with("_Z") && !raw_name.starts_with("___Z")) return std::string(raw_name);
  std::string owned(raw_name); // __cxa_demangle wants a terminated string
  int status = 0;
  std::unique_ptr<char, FreeDeleter> out(
      abi::__cxa_demangle(owned.c_str(), nullptr, nullptr, &status));
  if (status != 0 || out == nullptr) return owned;
  return std::string(out.get());
}

std::optional<SymbolizedAddress> symbolize(const ElfFile& file, uint64_t vaddr,
                                           const ElfFile* debug_file) {
  const Symbol* best = file.sized_symbol_containing(vaddr);
  if (debug_file != nullptr) {
    const Symbol* from_debug = debug_file->sized_symbol_containing(vaddr);
    if (from_debug != nullptr && (best == nullptr || from_debug->address > best->address)) {
      best = from_debug;
    }
  }
  if (best == nullptr) return std::nullopt;
  return make_result(*best, vaddr);
}

SymbolFiles::SymbolFiles(std::string debug_root) : debug_root_(std::move(debug_root)) {}

const SymbolFiles::Entry& SymbolFiles::get(const std::string& path, ino_t inode) {
  auto it = entries_.find(path);
  if (it != entries_.end()) {
    const Entry& cached = it->second;
    bool replaced = inode != 0 && cached.file != nullptr && cached.file->inode() != inode;
    if (!replaced) return cached;
    entries_.erase(it);
  }
  Entry entry;
  auto opened = ElfFile::open(path);
  if (!opened) {
    entry.error = opened.error();
  } else {
    entry.file = std::move(*opened);
    std::optional<std::string> debug_path;
    if (!debug_root_.empty()) debug_path = find_debug_file(*entry.file, debug_root_);
    if (debug_path) {
      auto debug = ElfFile::open(*debug_path);
      // A debug file of another build would name the wrong functions.
      if (debug && ((*debug)->build_id().empty() || entry.file->build_id().empty() ||
                    (*debug)->build_id() == entry.file->build_id())) {
        entry.debug = std::move(*debug);
      }
    }
  }
  return entries_.emplace(path, std::move(entry)).first->second;
}

ProcessSymbolizer::ProcessSymbolizer(std::vector<MappedFile> mappings,
                                     std::shared_ptr<SymbolFiles> files, bool demangle_names)
    : files_(files != nullptr ? std::move(files) : std::make_shared<SymbolFiles>()),
      demangle_names_(demangle_names) {
  set_mappings(std::move(mappings));
}

void ProcessSymbolizer::set_mappings(std::vector<MappedFile> mappings) {
  std::sort(mappings.begin(), mappings.end(),
            [](const MappedFile& a, const MappedFile& b) { return a.start < b.start; });
  mappings_ = std::move(mappings);
}

const MappedFile* ProcessSymbolizer::mapping_for(uint64_t address) const {
  auto after =
      std::upper_bound(mappings_.begin(), mappings_.end(), address,
                       [](uint64_t value, const MappedFile& m) { return value < m.start; });
  if (after == mappings_.begin()) return nullptr;
  const MappedFile& m = *(after - 1);
  if (address >= m.end || !m.executable || m.path.empty()) return nullptr;
  return &m;
}

std::optional<ProcessSymbol> ProcessSymbolizer::resolve(uint64_t address) {
  const MappedFile* m = mapping_for(address);
  if (m == nullptr) return std::nullopt;
  const SymbolFiles::Entry& entry = files_->get(m->path, m->inode);
  if (entry.file == nullptr) return std::nullopt;
  auto bias = entry.file->load_bias(m->start, m->offset);
  if (!bias) return std::nullopt;
  auto symbol = symbolize(*entry.file, address - *bias, entry.debug.get());
  if (!symbol) return std::nullopt;
  if (!demangle_names_) symbol->name = symbol->raw_name;
  return ProcessSymbol{std::move(*symbol), m->path};
}

std::string ProcessSymbolizer::usym(uint64_t address, bool show_offset, bool show_module) {
  std::optional<ProcessSymbol> found = resolve(address);
  if (!found) {
    std::string text = unknown_address(address);
    if (show_module) text += " ([unknown])";
    return text;
  }
  std::string text = std::move(found->symbol.name);
  if (show_offset) text += fmt::format("+{}", found->symbol.offset);
  if (show_module) text += fmt::format(" ({})", found->module);
  return text;
}

std::string ProcessSymbolizer::ustack(std::span<const uint64_t> frames, StackMode mode,
                                      size_t indent) {
  std::string text = "\n";
  std::string padding(indent, ' ');
  for (uint64_t address : frames) {
    if (address == 0) break;
    if (mode == StackMode::perf) {
      text += fmt::format("\t{:x} {}\n", address, usym(address, true, true));
    } else {
      text += padding;
      text += usym(address, true, false);
      text += '\n';
    }
  }
  return text;
}

} // namespace dprobe::elf
