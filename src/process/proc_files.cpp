#include "process/proc_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "common/fd.h"

namespace dprobe::process {

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return fail_errno("{}", path);
  std::string out;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("{}: read", path);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

std::optional<std::string> status_field(std::string_view status_text, std::string_view key) {
  while (!status_text.empty()) {
    size_t nl = status_text.find('\n');
    std::string_view line = status_text.substr(0, nl);
    status_text.remove_prefix(nl == std::string_view::npos ? status_text.size() : nl + 1);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
      std::string_view value = line.substr(key.size() + 1);
      size_t b = value.find_first_not_of(" \t");
      if (b == std::string_view::npos) return std::string();
      size_t e = value.find_last_not_of(" \t");
      return std::string(value.substr(b, e - b + 1));
    }
  }
  return std::nullopt;
}

std::optional<long> status_number(std::string_view status_text, std::string_view key) {
  auto value = status_field(status_text, key);
  if (!value) return std::nullopt;
  long n = 0;
  auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || ptr == value->data()) return std::nullopt;
  return n;
}

std::optional<char> stat_state(std::string_view stat_text) {
  // "pid (comm) S ...": comm may contain ") ", so look for the last ')'.
  size_t close = stat_text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat_text.size()) return std::nullopt;
  if (stat_text[close + 1] != ' ') return std::nullopt;
  return stat_text[close + 2];
}

std::optional<char> thread_state(pid_t pid, pid_t tid) {
  auto text = read_text_file(fmt::format("/proc/{}/task/{}/stat", pid, tid));
  if (!text) return std::nullopt;
  return stat_state(*text);
}

Result<std::vector<pid_t>> list_tasks(pid_t pid) {
  std::string path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return fail_errno("{}", path);
  std::vector<pid_t> tids;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    pid_t tid = 0;
    auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (ec == std::errc() && ptr == name.data() + name.size()) tids.push_back(tid);
  }
  ::closedir(dir);
  std::sort(tids.begin(), tids.end());
  return tids;
}

std::string read_comm(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/comm", pid));
  if (!text) return "?";
  while (!text->empty() && (text->back() == '\n' || text->back() == ' '))
    text->pop_back();
  return *text;
}

} // namespace dprobe::process
