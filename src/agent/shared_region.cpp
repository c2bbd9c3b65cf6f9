#include "agent/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>

namespace dprobe::agent {

Result<SharedRegion> SharedRegion::create(uint64_t size) {
  if (size == 0 || size % 4096 != 0) return fail("agent region: size {} is not whole pages", size);
  UniqueFd fd(::memfd_create("dprobe-region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fail_errno("agent region: memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return fail_errno("agent region: ftruncate memfd to {} bytes", size);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail_errno("agent region: sealing memfd");
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return fail_errno("agent region: mmap of {} bytes", size);
  return SharedRegion(std::move(fd), static_cast<uint8_t*>(p), size);
}

SharedRegion::SharedRegion(SharedRegion&& other) noexcept
    : fd_(std::move(other.fd_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedRegion& SharedRegion::operator=(SharedRegion&& other) noexcept {
  if (this != &other) {
    unmap();
    fd_ = std::move(other.fd_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedRegion::~SharedRegion() {
  unmap();
}

void SharedRegion::unmap() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

} // namespace dprobe::agent
