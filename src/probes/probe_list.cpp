#include "probes/probe_list.h"

#include <set>

#include "elf/debug_file.h"
#include "elf/elf_file.h"
#include "elf/library_resolver.h"
#include "elf/symbol_reader.h"
#include "elf/wildcard.h"
#include "lang/attach_point.h"

namespace dprobe::probes {

Result<ListPattern> parse_list_pattern(std::string_view text) {
  const size_t first = text.find(':');
  const std::string_view provider = text.substr(0, first);
  if (provider != "uprobe" && provider != "u" && provider != "uretprobe" && provider != "ur") {
    if (auto refusal = lang::refuse_provider(provider)) return fail("-l '{}': {}", text, *refusal);
    return fail("-l '{}': only uprobes can be listed: -l 'uprobe:PATH:PATTERN'", text);
  }
  const size_t last = text.rfind(':');
  if (first == std::string_view::npos || last == first) {
    return fail("-l '{}': a pattern needs a path and a function: -l 'uprobe:PATH:PATTERN'", text);
  }
  ListPattern pattern{std::string(text.substr(first + 1, last - first - 1)),
                      std::string(text.substr(last + 1)),
                      provider == "uretprobe" || provider == "ur" ? "uretprobe" : "uprobe"};
  if (pattern.path.empty()) {
    return fail("-l '{}': a pattern needs a path: -l 'uprobe:PATH:PATTERN'", text);
  }
  if (elf::has_wildcard(pattern.path)) {
    return fail("-l '{}': wildcards in the path are not supported, only in the function", text);
  }
  if (pattern.function.empty()) {
    return fail("-l '{}': a pattern needs a function (or '*'): -l 'uprobe:PATH:PATTERN'", text);
  }
  // bpftrace prints nonsense for these ("uprobe:./app:" for an address): refuse them instead.
  if (pattern.function.find('+') != std::string::npos ||
      (pattern.function[0] >= '0' && pattern.function[0] <= '9')) {
    return fail("-l '{}': '{}' is not a function name or pattern (offsets and addresses cannot "
                "be listed)",
                text, pattern.function);
  }
  return pattern;
}

std::string listed_path(std::string_view written, std::string_view resolved, std::string_view cwd) {
  if (written.find('/') != std::string_view::npos) return std::string(written);
  if (resolved == elf::absolute_path(written, cwd)) return std::string(written);
  return std::string(resolved);
}

std::vector<std::string> listing_lines(std::string_view path, std::string_view pattern,
                                       std::span<const std::string> names,
                                       std::string_view provider) {
  std::set<std::string_view> matching;
  for (const std::string& name : names) {
    if (elf::wildcard_match(pattern, name)) matching.insert(name);
  }
  std::vector<std::string> lines;
  lines.reserve(matching.size());
  for (std::string_view name : matching)
    lines.push_back(fmt::format("{}:{}:{}", provider, path, name));
  return lines;
}

Result<std::vector<std::string>> list_probes(std::string_view text, const std::string& cwd,
                                             const std::string& debug_root) {
  auto pattern = parse_list_pattern(text);
  if (!pattern) return std::unexpected(pattern.error());
  auto resolved = elf::resolve_probe_path(pattern->path, std::nullopt, cwd);
  if (!resolved) return with_context(resolved.error(), fmt::format("-l '{}'", text));
  auto file = elf::ElfFile::open(*resolved);
  if (!file) return with_context(file.error(), fmt::format("-l '{}'", text));

  // bcc reads the file's own tables and then those of its separate debug file, if any: a
  // stripped library still lists its static functions when its -dbgsym package is installed.
  // Names as the tables spell them: a debug file's .symtab says "_IO_fclose@@GLIBC_2.2.5", and
  // bpftrace lists that beside "_IO_fclose".
  std::vector<std::string> names = elf::read_function_names((*file)->elf_handle());
  if (!debug_root.empty()) {
    if (auto debug_path = elf::find_debug_file(**file, debug_root)) {
      if (auto debug = elf::ElfFile::open(*debug_path)) {
        std::vector<std::string> more = elf::read_function_names((*debug)->elf_handle());
        names.insert(names.end(), more.begin(), more.end());
      }
    }
  }
  return listing_lines(listed_path(pattern->path, *resolved, cwd), pattern->function, names,
                       pattern->provider);
}

} // namespace dprobe::probes
