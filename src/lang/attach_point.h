// Where a probe attaches, as parsed from text like "uprobe:./loop:work+4".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dprobe::lang {

/// Interval probes run in dprobe on a timer, like BEGIN and END (there is no CPU to sample).
enum class ProbeKind { Uprobe, Begin, End, Interval };

struct AttachPoint {
  ProbeKind kind;
  std::string raw;                 ///< as written, e.g. "uprobe:./loop:work+4"
  std::string path, symbol;        ///< uprobe only; symbol empty when `address` is set, may
                                   ///< hold wildcards ('*', '?') matching several functions
  uint64_t offset = 0;             ///< +OFFSET
  std::optional<uint64_t> address; ///< uprobe:PATH:0xADDR
  /// uretprobe:/ur: (kind Uprobe): probes every exit of the function instead of its entry.
  bool is_return = false;
  uint64_t interval_ns = 0;        ///< interval:UNIT:N, the period in nanoseconds
  int line = 0, column = 0;        ///< where it was written, for later diagnostics
};

/// Parses one attach point. On failure returns the diagnostic message (e.g. "kernel-only feature
/// 'kprobe' is not available in user space"); line/column are left for the caller to fill.
[[nodiscard]] std::optional<std::string> parse_attach_point(std::string_view raw, AttachPoint& out);

/// Why a provider other than uprobe/u/uretprobe/ur cannot be used here ("kernel-only feature 'kprobe' is not
/// available in user space", "unknown probe type 'x'"), nullopt for uprobe, u, BEGIN, END,
/// interval and i. Shared with `-l`, which takes a probe pattern instead of a script.
[[nodiscard]] std::optional<std::string> refuse_provider(std::string_view provider);

/// The period of "interval:UNIT:COUNT" in nanoseconds (units s, ms, us, and hz: COUNT per
/// second, as bpftrace 0.17 accepts them), or the diagnostic message.
[[nodiscard]] std::optional<std::string> parse_interval(std::string_view unit,
                                                        std::string_view count,
                                                        uint64_t& period_ns);

} // namespace dprobe::lang
