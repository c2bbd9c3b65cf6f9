// The few atomic operations the agent needs, as GCC builtins (they compile to plain x86
// instructions, no libatomic), plus the non-atomic single-instruction add of the hit path.
#pragma once

#include <stdint.h>

namespace dprobe::agent::blob {

template <class T> inline T load_relaxed(const T* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
template <class T> inline T load_acquire(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <class T> inline void store_relaxed(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
template <class T> inline void store_release(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/// Strong compare-and-swap; on failure *expected holds the current value.
template <class T> inline bool compare_swap(T* p, T* expected, T desired) {
  return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}
template <class T> inline T fetch_add(T* p, T v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
template <class T> inline T exchange_acquire(T* p, T v) {
  return __atomic_exchange_n(p, v, __ATOMIC_ACQUIRE);
}

/// *p += v for memory only this thread writes: one `add` instruction, so a signal handler
/// nesting on this thread (the only other writer) sees the memory before or after, never torn.
inline void local_add(uint64_t* p, uint64_t v) {
  __asm__ volatile("addq %1, %0" : "+m"(*p) : "er"(v));
}

/// Keeps the compiler from moving memory accesses across this point (signal-handler ordering
/// on one thread needs no fence, only program order).
inline void compiler_barrier() {
  __asm__ volatile("" ::: "memory");
}

} // namespace dprobe::agent::blob
