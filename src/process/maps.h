// /proc/PID/maps: the address-space layout of a process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dprobe::process {

/// One line of /proc/PID/maps.
struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0; ///< exclusive
  bool readable = false;
  bool writable = false;
  bool executable = false;
  bool is_private = false; ///< 'p' (copy-on-write) rather than 's' (shared)
  uint64_t offset = 0;     ///< file offset of `start`
  dev_t device = 0;        ///< makedev(major, minor) of "fd:01"
  ino_t inode = 0;
  std::string path;     ///< file path, "[heap]"-style pseudo name, or empty for anonymous memory
  bool deleted = false; ///< the path ended in " (deleted)", which is stripped from `path`

  [[nodiscard]] bool contains(uint64_t address) const { return address >= start && address < end; }
};

/// Parses the text of a maps file. Pure. Errors name the line ("maps line 3: ...").
[[nodiscard]] Result<std::vector<Mapping>> parse_maps(std::string_view text);

/// Reads and parses /proc/PID/maps.
[[nodiscard]] Result<std::vector<Mapping>> read_maps(pid_t pid);

/// Reads and parses a maps file at `path` (e.g. /proc/PID/task/TID/maps, which still works when
/// the thread-group leader is a zombie and /proc/PID/maps is empty).
[[nodiscard]] Result<std::vector<Mapping>> read_maps_file(const std::string& path);

} // namespace dprobe::process
