#include "process/auxv.h"

#include <elf.h>

#include <cstring>

#include "process/proc_files.h"

namespace dprobe::process {

std::vector<AuxEntry> parse_auxv(std::span<const uint8_t> bytes) {
  std::vector<AuxEntry> out;
  for (size_t at = 0; at + 16 <= bytes.size(); at += 16) {
    AuxEntry e;
    std::memcpy(&e.type, bytes.data() + at, 8);
    std::memcpy(&e.value, bytes.data() + at + 8, 8);
    if (e.type == AT_NULL) break;
    out.push_back(e);
  }
  return out;
}

Result<std::vector<AuxEntry>> read_auxv(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/auxv", pid));
  if (!text) return std::unexpected(text.error());
  return parse_auxv(std::span(reinterpret_cast<const uint8_t*>(text->data()), text->size()));
}

std::optional<uint64_t> aux_value(std::span<const AuxEntry> auxv, uint64_t type) {
  for (const auto& e : auxv) {
    if (e.type == type) return e.value;
  }
  return std::nullopt;
}

Result<uint64_t> read_hwcap2(pid_t pid) {
  auto auxv = read_auxv(pid);
  if (!auxv) return std::unexpected(auxv.error());
  return aux_value(*auxv, AT_HWCAP2).value_or(0);
}

} // namespace dprobe::process
