// Where a probe attaches, as parsed from text like "uprobe:./loop:work+4".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dprobe::lang {

enum class ProbeKind { Uprobe, Begin, End };

struct AttachPoint {
  ProbeKind kind;
  std::string raw;                 ///< as written, e.g. "uprobe:./loop:work+4"
  std::string path, symbol;        ///< uprobe only; symbol empty when `address` is set
  uint64_t offset = 0;             ///< +OFFSET
  std::optional<uint64_t> address; ///< uprobe:PATH:0xADDR
  int line = 0, column = 0;        ///< where it was written, for later diagnostics
};

/// Parses one attach point. On failure returns the diagnostic message (e.g. "kernel-only feature
/// 'kprobe' is not available in user space"); line/column are left for the caller to fill.
[[nodiscard]] std::optional<std::string> parse_attach_point(std::string_view raw, AttachPoint& out);

} // namespace dprobe::lang
