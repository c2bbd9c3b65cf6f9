#include "elf/file_bytes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"

namespace dprobe::elf {

Result<std::vector<uint8_t>> read_file_bytes(const std::string& path, size_t max_size) {
  // O_NONBLOCK: a FIFO put where a file was expected must not hang us.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return fail_errno("{}", path);
  std::vector<uint8_t> bytes;
  size_t used = 0;
  while (true) {
    if (bytes.size() - used < 4096) bytes.resize(used + 65536);
    ssize_t n = ::read(fd.get(), bytes.data() + used, bytes.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("{}", path);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
    if (used > max_size) return fail_code(EFBIG, "{}", path);
  }
  bytes.resize(used);
  return bytes;
}

} // namespace dprobe::elf
