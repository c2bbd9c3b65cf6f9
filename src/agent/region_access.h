// Bounds-checked access to a region from the controller side. The target writes the same
// memory concurrently: every word is read once, with an atomic load, into a local that is then
// checked; nothing outside [0, region.size()) is ever formed into a pointer.
#pragma once

#include <cstdint>
#include <span>

namespace dprobe::agent::detail {

/// The T at `offset`, or null when it is not entirely inside the region or misaligned.
template <class T> T* object_at(std::span<uint8_t> region, uint64_t offset) {
  if (offset > region.size() || sizeof(T) > region.size() - offset) return nullptr;
  if ((reinterpret_cast<uintptr_t>(region.data()) + offset) % alignof(T) != 0) return nullptr;
  return reinterpret_cast<T*>(region.data() + offset);
}

/// [offset, offset + length) lies inside [area_offset, area_offset + area_size).
inline bool inside(uint64_t offset, uint64_t length, uint64_t area_offset, uint64_t area_size) {
  return offset >= area_offset && offset - area_offset <= area_size &&
         length <= area_size - (offset - area_offset);
}

template <class T> T load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <class T> void store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

} // namespace dprobe::agent::detail
