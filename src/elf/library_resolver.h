// From the file part of a probe ("./prog", "/usr/bin/bash", "libc", "bash") to a path.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "elf/ld_so_cache.h"

namespace dprobe::elf {

/// Where resolve_probe_path() looks. The defaults are the real system; tests point them at
/// fakes.
struct LibrarySearch {
  std::string proc_root = "/proc";
  std::string ld_so_cache = "/etc/ld.so.cache";
  std::vector<std::string> library_dirs = {"/lib/x86_64-linux-gnu",
                                           "/usr/lib/x86_64-linux-gnu",
                                           "/lib64",
                                           "/usr/lib64",
                                           "/lib",
                                           "/usr/lib"};
  /// Colon-separated program directories; nullopt: $PATH at the time of the call.
  std::optional<std::string> program_path;
};

/// The file a probe names, as bpftrace 0.17 finds it:
/// - `written` contains '/': that path, made absolute against `cwd` (lexically: no symlinks
///   are resolved, "." and ".." are folded), which must exist: "ABS: No such file or
///   directory".
/// - a library name such as "libc" or "libstdc++" (bpftrace never puts "lib" in front: "c"
///   is not libc): first a file mapped by `pid` whose name is the name followed by "." or "-"
///   and containing ".so" (libc.so.6, libc-2.31.so), then /etc/ld.so.cache (an x86-64 entry
///   whose soname starts with "NAME.so"), then the default library directories (an ELF file
///   named "NAME.so*"; the highest version). A soname written in full ("libc.so.6") is found
///   the same ways; bpftrace does not accept that.
/// - a name without '/' is also an ELF file of that name in `cwd`, then in a directory of
///   PATH (`uprobe:bash:readline`). Names starting with "lib" are looked up as libraries
///   first, other names as programs first, as bpftrace does.
/// Errors: "no library 'libfoo' found (searched /proc/42/maps, /etc/ld.so.cache, the default
/// library directories, the current directory and PATH)", or for a name without "lib",
/// "no program or library 'foo' found (searched the current directory, PATH, /proc/42/maps,
/// /etc/ld.so.cache and the default library directories)". The maps part is left out when no
/// pid is given; an unreadable maps file or cache is skipped like a missing one.
[[nodiscard]] Result<std::string>
resolve_probe_path(std::string_view written, std::optional<pid_t> pid, const std::string& cwd);
/// The same, looking where `search` says.
[[nodiscard]] Result<std::string> resolve_probe_path(std::string_view written,
                                                     std::optional<pid_t> pid,
                                                     const std::string& cwd,
                                                     const LibrarySearch& search);

/// `path` made absolute against `cwd` and folded lexically ("a/./b/../c" -> "a/c").
[[nodiscard]] std::string absolute_path(std::string_view path, std::string_view cwd);

/// Pure pieces of the search, exposed for tests.
/// A mapped file named `file_name` is the library `name` (bcc's rule, on the base name).
[[nodiscard]] bool is_mapped_library(std::string_view name, std::string_view file_name);
/// A cache soname or directory entry `file_name` is the library `name`.
[[nodiscard]] bool is_library_file(std::string_view name, std::string_view file_name);
/// The first file in the text of a maps file that is library `name`; deleted files and
/// pseudo-paths ("[vdso]") are skipped.
[[nodiscard]] std::optional<std::string> find_library_in_maps(std::string_view maps_text,
                                                              std::string_view name);
/// The paths of the x86-64 glibc entries (outside glibc-hwcaps subdirectories) that are
/// library `name`, in cache order.
[[nodiscard]] std::vector<std::string> libraries_in_cache(std::span<const LdCacheEntry> entries,
                                                          std::string_view name);

} // namespace dprobe::elf
