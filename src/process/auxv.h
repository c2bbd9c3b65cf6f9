// /proc/PID/auxv: the auxiliary vector the kernel handed to the program at exec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"

namespace dprobe::process {

struct AuxEntry {
  uint64_t type = 0; ///< AT_* from <elf.h>
  uint64_t value = 0;
};

/// Parses raw auxv bytes (pairs of native 64-bit words) up to AT_NULL. Pure.
[[nodiscard]] std::vector<AuxEntry> parse_auxv(std::span<const uint8_t> bytes);

/// Reads /proc/PID/auxv.
[[nodiscard]] Result<std::vector<AuxEntry>> read_auxv(pid_t pid);

/// The value of the first entry of `type`, if present.
[[nodiscard]] std::optional<uint64_t> aux_value(std::span<const AuxEntry> auxv, uint64_t type);

/// HWCAP2_FSGSBASE (<asm/hwcap2.h>): the kernel lets user code run rdfsbase/wrfsbase.
constexpr uint64_t kHwcap2FsGsBase = uint64_t{1} << 1;

/// AT_HWCAP2 of process `pid`; 0 when the kernel did not provide one (no bits set).
[[nodiscard]] Result<uint64_t> read_hwcap2(pid_t pid);

} // namespace dprobe::process
