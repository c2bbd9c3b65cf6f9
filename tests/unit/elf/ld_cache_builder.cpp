#include "ld_cache_builder.h"

#include <cstring>
#include <string_view>

namespace dprobe::elf::testing {

namespace {

template <class T> void put(std::vector<uint8_t>& out, size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof(T));
}

void append(std::vector<uint8_t>& out, std::string_view text) {
  out.insert(out.end(), text.begin(), text.end());
}

} // namespace

std::vector<uint8_t> build_ld_cache(std::span<const LdCacheEntry> entries, bool compat) {
  std::vector<uint8_t> out;
  if (compat) {
    append(out, "ld.so-1.7.0");
    out.resize(16);
    put<uint32_t>(out, 12, static_cast<uint32_t>(entries.size()));
    out.resize(16 + entries.size() * 12); // old entries: unused by the parser, left zero
    out.resize((out.size() + 7) & ~size_t{7});
  }
  size_t base = out.size();
  append(out, "glibc-ld.so.cache1.1");
  out.resize(base + 48 + entries.size() * 24);
  put<uint32_t>(out, base + 20, static_cast<uint32_t>(entries.size()));
  out[base + 28] = 2; // little-endian
  size_t strings_at = out.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    size_t at = base + 48 + i * 24;
    put<int32_t>(out, at, entries[i].flags);
    put<uint32_t>(out, at + 4, static_cast<uint32_t>(out.size() - base));
    append(out, entries[i].key);
    out.push_back(0);
    put<uint32_t>(out, at + 8, static_cast<uint32_t>(out.size() - base));
    append(out, entries[i].value);
    out.push_back(0);
    put<uint64_t>(out, at + 16, entries[i].hwcap);
  }
  put<uint32_t>(out, base + 24, static_cast<uint32_t>(out.size() - strings_at));
  return out;
}

} // namespace dprobe::elf::testing
