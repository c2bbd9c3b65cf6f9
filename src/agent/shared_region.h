// The region's memory on dprobe's side: a sealed memfd mapped read-write. The same fd is
// mapped into the target (by remote mmap) so both see the same pages.
#pragma once

#include <cstdint>
#include <span>

#include "common/fd.h"
#include "common/result.h"

namespace dprobe::agent {

class SharedRegion {
 public:
  /// A zero-filled memfd of `size` bytes (a multiple of the page size), mapped here. Its size is
  /// sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): the target holds the fd too, and a
  /// shrunk file would turn dprobe's reads into SIGBUS.
  [[nodiscard]] static Result<SharedRegion> create(uint64_t size);

  SharedRegion(SharedRegion&& other) noexcept;
  SharedRegion& operator=(SharedRegion&& other) noexcept;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] std::span<uint8_t> bytes() const { return {data_, size_}; }

 private:
  SharedRegion(UniqueFd fd, uint8_t* data, uint64_t size)
      : fd_(std::move(fd)), data_(data), size_(size) {}
  void unmap();

  UniqueFd fd_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

} // namespace dprobe::agent
