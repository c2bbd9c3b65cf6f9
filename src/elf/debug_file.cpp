#include "elf/debug_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/fd.h"
#include "elf/elf_file.h"

namespace dprobe::elf {

namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Elf_Scn* section_named(Elf* elf, std::string_view name) {
  size_t names_index = 0;
  if (elf_getshdrstrndx(elf, &names_index) != 0) return nullptr;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* section_name = elf_strptr(elf, names_index, shdr.sh_name);
    if (section_name != nullptr && name == section_name) return scn;
  }
  return nullptr;
}

} // namespace

std::optional<DebugLink> read_debuglink(Elf* elf) {
  Elf_Scn* scn = section_named(elf, ".gnu_debuglink");
  if (scn == nullptr) return std::nullopt;
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (data == nullptr || data->d_buf == nullptr) return std::nullopt;
  // The name, its NUL, padding to a multiple of 4, then the CRC (little-endian here).
  const auto* bytes = static_cast<const char*>(data->d_buf);
  const void* nul = std::memchr(bytes, '\0', data->d_size);
  if (nul == nullptr) return std::nullopt;
  size_t name_length = static_cast<size_t>(static_cast<const char*>(nul) - bytes);
  size_t crc_at = (name_length + 1 + 3) & ~size_t{3};
  if (name_length == 0 || crc_at + 4 > data->d_size) return std::nullopt;
  DebugLink link{std::string(bytes, name_length), 0};
  std::memcpy(&link.crc, bytes + crc_at, sizeof(link.crc));
  return link;
}

uint32_t debuglink_crc32(uint32_t crc, std::span<const uint8_t> bytes) {
  crc = ~crc;
  for (uint8_t byte : bytes)
    crc = kCrcTable[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Result<uint32_t> file_crc32(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return fail_errno("{}", path);
  std::vector<uint8_t> buffer(1 << 16);
  uint32_t crc = 0;
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("{}", path);
    }
    if (n == 0) return crc;
    crc = debuglink_crc32(crc, std::span(buffer.data(), static_cast<size_t>(n)));
  }
}

std::optional<std::string> find_debug_file(const ElfFile& file, const std::string& debug_root) {
  const std::string& id = file.build_id();
  if (id.size() > 2) {
    std::string path =
        fmt::format("{}/.build-id/{}/{}.debug", debug_root, id.substr(0, 2), id.substr(2));
    if (is_regular_file(path)) return path;
  }
  std::optional<DebugLink> link = read_debuglink(file.elf_handle());
  if (!link || link->file_name.find('/') != std::string::npos) return std::nullopt;
  std::string_view own = file.path();
  size_t slash = own.rfind('/');
  std::string dir(slash == std::string_view::npos ? std::string_view(".") : own.substr(0, slash));
  for (const std::string& path : {fmt::format("{}/{}", dir, link->file_name),
                                  fmt::format("{}/.debug/{}", dir, link->file_name),
                                  fmt::format("{}{}/{}", debug_root, dir, link->file_name)}) {
    if (path == own || !is_regular_file(path)) continue;
    auto crc = file_crc32(path);
    if (crc && *crc == link->crc) return path;
  }
  return std::nullopt;
}

} // namespace dprobe::elf
