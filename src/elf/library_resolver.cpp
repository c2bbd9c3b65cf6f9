#include "elf/library_resolver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/fd.h"
#include "elf/file_bytes.h"

namespace dprobe::elf {

namespace {

std::string_view base_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// A regular file (after symlinks) that starts with the ELF magic: what bpftrace accepts as a
// program or library. Linker scripts such as /usr/lib/x86_64-linux-gnu/libc.so are not.
bool is_elf_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return false;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  char magic[4];
  return ::pread(fd.get(), magic, sizeof(magic), 0) == sizeof(magic) &&
         std::memcmp(magic,
                     "\x7f"
                     "ELF",
                     sizeof(magic)) == 0;
}

std::optional<std::string> find_in_maps_of(pid_t pid, std::string_view name,
                                           const LibrarySearch& search) {
  auto text = read_file_bytes(fmt::format("{}/{}/maps", search.proc_root, pid));
  if (!text) return std::nullopt;
  return find_library_in_maps(
      std::string_view(reinterpret_cast<const char*>(text->data()), text->size()), name);
}

std::optional<std::string> find_in_cache(std::string_view name, const LibrarySearch& search) {
  auto entries = read_ld_so_cache(search.ld_so_cache);
  if (!entries) return std::nullopt;
  // A stale cache can name files that are gone.
  for (std::string& path : libraries_in_cache(*entries, name)) {
    if (is_elf_file(path)) return std::move(path);
  }
  return std::nullopt;
}

// In one directory: the file named exactly `name`, else the highest version of NAME.so*
// (libz.so.1.2.13 over libz.so.1), as ldconfig orders its cache.
std::optional<std::string> find_in_directory(const std::string& dir, std::string_view name) {
  if (std::string exact = fmt::format("{}/{}", dir, name); is_elf_file(exact)) return exact;
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) return std::nullopt;
  std::vector<std::string> candidates;
  while (const dirent* entry = ::readdir(stream)) {
    if (is_library_file(name, entry->d_name)) candidates.emplace_back(entry->d_name);
  }
  ::closedir(stream);
  std::sort(candidates.begin(), candidates.end(), [](const std::string& a, const std::string& b) {
    return ::strverscmp(a.c_str(), b.c_str()) > 0;
  });
  for (const std::string& candidate : candidates) {
    std::string path = fmt::format("{}/{}", dir, candidate);
    if (is_elf_file(path)) return path;
  }
  return std::nullopt;
}

std::optional<std::string> find_library(std::string_view name, std::optional<pid_t> pid,
                                        const LibrarySearch& search) {
  if (pid) {
    if (auto found = find_in_maps_of(*pid, name, search)) return found;
  }
  if (auto found = find_in_cache(name, search)) return found;
  for (const std::string& dir : search.library_dirs) {
    if (auto found = find_in_directory(dir, name)) return found;
  }
  return std::nullopt;
}

// `name` in `cwd`, then in each directory of the program path.
std::optional<std::string> find_program(std::string_view name, const std::string& cwd,
                                        const LibrarySearch& search) {
  if (std::string here = absolute_path(name, cwd); is_elf_file(here)) return here;
  std::string program_path;
  if (search.program_path) {
    program_path = *search.program_path;
  } else if (const char* env = std::getenv("PATH")) {
    program_path = env;
  }
  std::string_view rest = program_path;
  while (!rest.empty()) {
    size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (dir.empty()) continue; // the current directory was tried first
    if (std::string path = fmt::format("{}/{}", dir, name); is_elf_file(path)) return path;
  }
  return std::nullopt;
}

} // namespace

std::string absolute_path(std::string_view path, std::string_view cwd) {
  std::filesystem::path p(path);
  if (p.is_relative() && !cwd.empty()) p = std::filesystem::path(cwd) / p;
  return p.lexically_normal().string();
}

bool is_mapped_library(std::string_view name, std::string_view file_name) {
  if (file_name == name) return true;
  if (file_name.size() <= name.size() || !file_name.starts_with(name)) return false;
  char separator = file_name[name.size()];
  if (separator != '.' && separator != '-') return false;
  return file_name.find(".so", name.size()) != std::string_view::npos;
}

bool is_library_file(std::string_view name, std::string_view file_name) {
  return file_name == name ||
         (file_name.starts_with(name) && file_name.substr(name.size()).starts_with(".so"));
}

std::optional<std::string> find_library_in_maps(std::string_view maps_text, std::string_view name) {
  constexpr std::string_view kDeleted = " (deleted)";
  while (!maps_text.empty()) {
    size_t newline = maps_text.find('\n');
    std::string_view line = maps_text.substr(0, newline);
    maps_text =
        newline == std::string_view::npos ? std::string_view() : maps_text.substr(newline + 1);
    // "start-end perms offset dev inode   path": the path is what follows the fifth field.
    size_t at = 0;
    for (int field = 0; field < 5 && at != std::string_view::npos; ++field) {
      at = line.find_first_not_of(' ', at);
      if (at != std::string_view::npos) at = line.find(' ', at);
    }
    if (at == std::string_view::npos) continue;
    at = line.find_first_not_of(' ', at);
    if (at == std::string_view::npos) continue;
    std::string_view path = line.substr(at);
    if (!path.starts_with('/') || path.ends_with(kDeleted)) continue;
    if (is_mapped_library(name, base_name(path))) return std::string(path);
  }
  return std::nullopt;
}

std::vector<std::string> libraries_in_cache(std::span<const LdCacheEntry> entries,
                                            std::string_view name) {
  std::vector<std::string> paths;
  for (const LdCacheEntry& entry : entries) {
    if (!is_x86_64_libc6(entry.flags) || (entry.hwcap & kLdCacheHwcapExtension) != 0) continue;
    if (is_library_file(name, entry.key)) paths.push_back(entry.value);
  }
  return paths;
}

Result<std::string> resolve_probe_path(std::string_view written, std::optional<pid_t> pid,
                                       const std::string& cwd) {
  return resolve_probe_path(written, pid, cwd, LibrarySearch{});
}

Result<std::string> resolve_probe_path(std::string_view written, std::optional<pid_t> pid,
                                       const std::string& cwd, const LibrarySearch& search) {
  if (written.empty()) return fail("empty file name in probe");
  if (written.find('/') != std::string_view::npos) {
    std::string path = absolute_path(written, cwd);
    if (!exists(path)) return fail_errno("{}", path);
    return path;
  }

  std::string maps_part = pid ? fmt::format("{}/{}/maps, ", search.proc_root, *pid) : "";
  if (written.starts_with("lib")) {
    if (auto found = find_library(written, pid, search)) return std::move(*found);
    if (auto found = find_program(written, cwd, search)) return std::move(*found);
    return fail("no library '{}' found (searched {}{}, the default library directories, the "
                "current directory and PATH)",
                written, maps_part, search.ld_so_cache);
  }
  if (auto found = find_program(written, cwd, search)) return std::move(*found);
  if (auto found = find_library(written, pid, search)) return std::move(*found);
  return fail("no program or library '{}' found (searched the current directory, PATH, {}{} and "
              "the default library directories)",
              written, maps_part, search.ld_so_cache);
}

} // namespace dprobe::elf
