#include "process/maps.h"

#include <sys/sysmacros.h>

#include <charconv>

#include "process/proc_files.h"

namespace dprobe::process {
namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

// Consumes a number in `base` from the front of `s`.
template <class T> bool take_number(std::string_view& s, int base, T& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (ec != std::errc() || ptr == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  return true;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

bool skip_spaces(std::string_view& s) {
  size_t n = s.find_first_not_of(' ');
  bool any = n != 0;
  s.remove_prefix(n == std::string_view::npos ? s.size() : n);
  return any;
}

Result<Mapping> parse_line(std::string_view line, size_t line_number) {
  auto bad = [&](std::string_view what) {
    return fail("maps line {}: {}: '{}'", line_number, what, line);
  };
  Mapping m;
  std::string_view s = line;
  if (!take_number(s, 16, m.start) || !take_char(s, '-') || !take_number(s, 16, m.end)) {
    return bad("bad address range");
  }
  if (m.end < m.start) return bad("range ends before it starts");
  if (!skip_spaces(s) || s.size() < 4) return bad("missing permissions");
  std::string_view perms = s.substr(0, 4);
  s.remove_prefix(4);
  if ((perms[0] != 'r' && perms[0] != '-') || (perms[1] != 'w' && perms[1] != '-') ||
      (perms[2] != 'x' && perms[2] != '-') || (perms[3] != 'p' && perms[3] != 's')) {
    return bad("bad permissions");
  }
  m.readable = perms[0] == 'r';
  m.writable = perms[1] == 'w';
  m.executable = perms[2] == 'x';
  m.is_private = perms[3] == 'p';
  unsigned int major = 0;
  unsigned int minor = 0;
  uint64_t inode = 0;
  if (!skip_spaces(s) || !take_number(s, 16, m.offset)) return bad("bad offset");
  if (!skip_spaces(s) || !take_number(s, 16, major) || !take_char(s, ':') ||
      !take_number(s, 16, minor)) {
    return bad("bad device");
  }
  if (!skip_spaces(s) || !take_number(s, 10, inode)) return bad("bad inode");
  m.device = makedev(major, minor);
  m.inode = static_cast<ino_t>(inode);
  if (!s.empty() && !skip_spaces(s)) return bad("junk after inode");
  // The rest of the line is the path; it may itself contain spaces.
  if (s.ends_with(kDeletedSuffix)) {
    m.deleted = true;
    s.remove_suffix(kDeletedSuffix.size());
  }
  m.path = std::string(s);
  return m;
}

} // namespace

Result<std::vector<Mapping>> parse_maps(std::string_view text) {
  std::vector<Mapping> out;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_number;
    if (line.empty()) continue;
    auto m = parse_line(line, line_number);
    if (!m) return std::unexpected(m.error());
    out.push_back(std::move(*m));
  }
  return out;
}

Result<std::vector<Mapping>> read_maps_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  auto maps = parse_maps(*text);
  if (!maps) return with_context(maps.error(), path);
  return maps;
}

Result<std::vector<Mapping>> read_maps(pid_t pid) {
  return read_maps_file(fmt::format("/proc/{}/maps", pid));
}

} // namespace dprobe::process
