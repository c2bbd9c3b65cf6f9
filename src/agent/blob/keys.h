// Hashing and comparing packed keys (map keys, fs bases). Inline: the hit path uses them.
#pragma once

#include <stdint.h>

namespace dprobe::agent::blob {

using UnalignedU64 = uint64_t __attribute__((aligned(1), may_alias));

inline uint64_t load_unaligned(const uint8_t* p) {
  return *reinterpret_cast<const UnalignedU64*>(p);
}

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/// Where a thread's slot is looked for first: one multiply, its high half (thread control blocks
/// differ in the bits above the page offset, which the product carries upward). The fold brings
/// a thread_key's tid bits (47..63) down first: a forked child's thread, with its parent's fs
/// base, must not land on its parent's slot.
inline uint32_t thread_slot_index(uint64_t key, uint32_t count) {
  const uint64_t folded = key ^ (key >> 29);
  return static_cast<uint32_t>((folded * 0x9e3779b97f4a7c15ull) >> 32) & (count - 1);
}

inline uint32_t hash_key(const uint8_t* key, uint32_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
  uint32_t i = 0;
  for (; i + 8 <= size; i += 8) {
    h ^= load_unaligned(key + i);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  for (; i < size; ++i) {
    h ^= key[i];
    h *= 0x100000001b3ull;
  }
  h ^= h >> 29;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

inline bool keys_equal(const uint8_t* a, const uint8_t* b, uint32_t size) {
  uint32_t i = 0;
  for (; i + 8 <= size; i += 8) {
    if (load_unaligned(a + i) != load_unaligned(b + i)) return false;
  }
  for (; i < size; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

} // namespace dprobe::agent::blob
