// `dprobe -l 'uprobe:PATH:PATTERN'`: the probes a pattern names, printed as bpftrace -l does.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dprobe::probes {

/// A probe pattern split into its parts: "u:libc:mall*" -> ("libc", "mall*").
struct ListPattern {
  std::string path;     ///< as written (may be a library name such as "libc")
  std::string function; ///< a name or a wildcard ('*' any run, '?' one character)
  std::string provider = "uprobe"; ///< spelled out as bpftrace lists it: uprobe or uretprobe
};

/// Parses `-l`'s argument. Errors are one line: kernel-only providers ("kernel-only feature
/// 'kprobe' is not available in user space"), other probe types, a missing path or function.
[[nodiscard]] Result<ListPattern> parse_list_pattern(std::string_view text);

/// The path as bpftrace prints it in a listing: as written when it has a '/' or names a file
/// in the current directory, else where it was found (PATH, a library directory).
[[nodiscard]] std::string listed_path(std::string_view written, std::string_view resolved,
                                      std::string_view cwd);

/// "PROVIDER:PATH:NAME" for every distinct name among `names` matching `pattern`, sorted
/// bytewise (bpftrace collects them in a std::set).
[[nodiscard]] std::vector<std::string> listing_lines(std::string_view path,
                                                     std::string_view pattern,
                                                     std::span<const std::string> names,
                                                     std::string_view provider = "uprobe");

/// The whole listing for `text`: resolves the file as probes do (libraries through the loader's
/// cache), reads its function symbols and those of its separate debug file under
/// `debug_root`, the way bpftrace (bcc) does. No match is an empty listing, as in bpftrace.
[[nodiscard]] Result<std::vector<std::string>>
list_probes(std::string_view text, const std::string& cwd,
            const std::string& debug_root = "/usr/lib/debug");

} // namespace dprobe::probes
