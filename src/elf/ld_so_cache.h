// /etc/ld.so.cache: the dynamic loader's index of library sonames to paths.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace dprobe::elf {

/// One library of the cache, e.g. {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x0303}.
struct LdCacheEntry {
  std::string key;   ///< soname (file name) the loader looks up
  std::string value; ///< full path
  int32_t flags = 0; ///< kind (low byte) and ABI (second byte), see is_x86_64_libc6()
  uint64_t hwcap = 0;

  friend bool operator==(const LdCacheEntry&, const LdCacheEntry&) = default;
};

// glibc's sysdeps/generic/ldconfig.h.
inline constexpr int32_t kLdCacheTypeMask = 0x00ff;
inline constexpr int32_t kLdCacheTypeElfLibc6 = 0x0003;
inline constexpr int32_t kLdCacheAbiMask = 0xff00;
inline constexpr int32_t kLdCacheAbiX8664Lib64 = 0x0300;
/// Set in `hwcap` for libraries of a glibc-hwcaps subdirectory (x86-64-v3/ ...), which the
/// loader uses only on CPUs that have those features.
inline constexpr uint64_t kLdCacheHwcapExtension = uint64_t{1} << 62;

/// An ELF library for this ABI: x86-64 and glibc (not 32-bit, not x32).
[[nodiscard]] constexpr bool is_x86_64_libc6(int32_t flags) {
  return (flags & kLdCacheTypeMask) == kLdCacheTypeElfLibc6 &&
         (flags & kLdCacheAbiMask) == kLdCacheAbiX8664Lib64;
}

/// Parses the "glibc-ld.so.cache1.1" format, alone (what ldconfig writes since glibc 2.32) or
/// after an old "ld.so-1.7.0" part (the compat format). Entries come in file order, which is
/// ldconfig's: a name's higher versions first. Little-endian only. Every offset and length is
/// checked against the buffer. Errors: "not an ld.so.cache file", "... truncated", etc.
[[nodiscard]] Result<std::vector<LdCacheEntry>> parse_ld_so_cache(std::span<const uint8_t> bytes);

/// Reads and parses the cache at `path` (normally /etc/ld.so.cache); errors start with it.
[[nodiscard]] Result<std::vector<LdCacheEntry>> read_ld_so_cache(const std::string& path);

} // namespace dprobe::elf
