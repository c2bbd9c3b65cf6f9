#include "elf/ld_so_cache.h"

#include <cstring>
#include <string_view>

#include "elf/file_bytes.h"

namespace dprobe::elf {

namespace {

// glibc's sysdeps/generic/dl-cache.h, little-endian x86-64 layout.
constexpr std::string_view kNewMagic = "glibc-ld.so.cache1.1"; // magic then version, no NUL
constexpr size_t kNewHeaderSize = 48;
constexpr size_t kNewCountAt = 20;
constexpr size_t kNewEndianAt = 28;
constexpr size_t kNewEntrySize = 24; // flags, key, value, osversion (4 each), hwcap (8)
constexpr uint8_t kEndianBig = 3;    // 0: unset (older ldconfig), 2: little, 1: invalid

constexpr std::string_view kOldMagic = "ld.so-1.7.0";
constexpr size_t kOldHeaderSize = 16; // magic, 1 byte of padding, nlibs
constexpr size_t kOldCountAt = 12;
constexpr size_t kOldEntrySize = 12;
constexpr size_t kNewPartAlignment = 8; // alignof(struct cache_file_new)

template <class T> T load(std::span<const uint8_t> bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

bool starts_with(std::span<const uint8_t> bytes, std::string_view magic) {
  return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}

// The NUL-terminated string at `offset` of `part`.
Result<std::string> string_at(std::span<const uint8_t> part, uint32_t offset, size_t entry,
                              std::string_view what) {
  if (offset >= part.size()) {
    return fail("ld.so.cache entry {}: {} offset 0x{:x} is outside the file", entry, what, offset);
  }
  const auto* begin = reinterpret_cast<const char*>(part.data() + offset);
  const void* nul = std::memchr(begin, '\0', part.size() - offset);
  if (nul == nullptr) {
    return fail("ld.so.cache entry {}: {} at 0x{:x} runs past the end of the file", entry, what,
                offset);
  }
  return std::string(begin, static_cast<const char*>(nul));
}

// The new-format part, which starts at `part.data()`; its string offsets count from there.
Result<std::vector<LdCacheEntry>> parse_new_part(std::span<const uint8_t> part) {
  if (!starts_with(part, kNewMagic)) return fail("not an ld.so.cache file (bad magic)");
  if (part.size() < kNewHeaderSize) return fail("ld.so.cache truncated in its header");
  if (part[kNewEndianAt] == kEndianBig) return fail("ld.so.cache is big-endian");
  uint32_t count = load<uint32_t>(part, kNewCountAt);
  if (count > (part.size() - kNewHeaderSize) / kNewEntrySize) {
    return fail("ld.so.cache truncated: {} entries do not fit in {} bytes", count, part.size());
  }
  std::vector<LdCacheEntry> entries;
  entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    size_t at = kNewHeaderSize + i * kNewEntrySize;
    LdCacheEntry entry;
    entry.flags = load<int32_t>(part, at);
    auto key = string_at(part, load<uint32_t>(part, at + 4), i, "key");
    if (!key) return std::unexpected(key.error());
    auto value = string_at(part, load<uint32_t>(part, at + 8), i, "value");
    if (!value) return std::unexpected(value.error());
    entry.key = std::move(*key);
    entry.value = std::move(*value);
    entry.hwcap = load<uint64_t>(part, at + 16);
    entries.push_back(std::move(entry));
  }
  return entries;
}

} // namespace

Result<std::vector<LdCacheEntry>> parse_ld_so_cache(std::span<const uint8_t> bytes) {
  if (!starts_with(bytes, kOldMagic)) return parse_new_part(bytes);
  // Compat format: the old table (which has no hwcap or flags we need) is skipped; the new one
  // follows it at the next 8-byte boundary.
  if (bytes.size() < kOldHeaderSize) return fail("ld.so.cache truncated in its header");
  uint64_t old_count = load<uint32_t>(bytes, kOldCountAt);
  uint64_t new_at = kOldHeaderSize + old_count * kOldEntrySize;
  new_at = (new_at + kNewPartAlignment - 1) & ~uint64_t{kNewPartAlignment - 1};
  if (new_at >= bytes.size()) return fail("ld.so.cache in the old format only, not supported");
  return parse_new_part(bytes.subspan(static_cast<size_t>(new_at)));
}

Result<std::vector<LdCacheEntry>> read_ld_so_cache(const std::string& path) {
  auto bytes = read_file_bytes(path);
  if (!bytes) return std::unexpected(bytes.error());
  auto entries = parse_ld_so_cache(*bytes);
  if (!entries) return with_context(entries.error(), path);
  return entries;
}

} // namespace dprobe::elf
