// Memory shared between dprobe and the target (the in-target agent's region).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dprobe::process {

/// One memfd mapped MAP_SHARED read/write both in the target and in dprobe.
/// Destruction unmaps only dprobe's view: the target's mapping stays, because trampolines in
/// the target keep using it after dprobe is gone.
struct SharedMapping {
  SharedMapping(uint64_t target_address, size_t length, void* local)
      : target_address(target_address), length(length), local(local) {}
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  ~SharedMapping();

  uint64_t target_address; ///< where the region is mapped in the target (PROT_READ|PROT_WRITE)
  size_t length;           ///< bytes, a whole number of pages
  void* local;             ///< dprobe's own mapping of the same pages
};

} // namespace dprobe::process
