#include "lang/attach_point.h"

#include <array>
#include <vector>

#include <fmt/format.h>

namespace dprobe::lang {

namespace {

// Providers that only make sense inside the kernel (bpftrace's names and aliases).
constexpr std::array<std::string_view, 24> kKernelProviders = {"kprobe",
                                                               "k",
                                                               "kretprobe",
                                                               "kr",
                                                               "tracepoint",
                                                               "t",
                                                               "rawtracepoint",
                                                               "rt",
                                                               "kfunc",
                                                               "f",
                                                               "kretfunc",
                                                               "fr",
                                                               "fentry",
                                                               "fexit",
                                                               "iter",
                                                               "watchpoint",
                                                               "w",
                                                               "asyncwatchpoint",
                                                               "aw",
                                                               "software",
                                                               "s",
                                                               "hardware",
                                                               "h",
                                                               "kprobe_multi"};

// Providers that work in user space and will come in later milestones.
constexpr std::array<std::string_view, 4> kLaterProviders = {"usdt", "U", "profile", "p"};

/// Splits on ':' outside double quotes, dropping the quotes.
std::vector<std::string> split_colons(std::string_view raw) {
  std::vector<std::string> parts(1);
  bool in_quotes = false;
  for (char c : raw) {
    if (c == '"') {
      in_quotes = !in_quotes;
    } else if (c == ':' && !in_quotes) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

/// Decimal or 0x-hex, the whole string; nullopt when malformed or too large.
std::optional<uint64_t> parse_number(std::string_view text) {
  unsigned base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    unsigned d = 99;
    if (c >= '0' && c <= '9')
      d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = static_cast<unsigned>(c - 'A' + 10);
    if (d >= base) return std::nullopt;
    if (value > (UINT64_MAX - d) / base) return std::nullopt;
    value = value * base + d;
  }
  return value;
}

bool contains(const auto& list, std::string_view name) {
  for (std::string_view entry : list) {
    if (entry == name) return true;
  }
  return false;
}

} // namespace

std::optional<std::string> parse_attach_point(std::string_view raw, AttachPoint& out) {
  out.raw = std::string(raw);
  out.path.clear();
  out.symbol.clear();
  out.offset = 0;
  out.address.reset();
  out.is_return = false;
  const std::vector<std::string> parts = split_colons(raw);
  const std::string& provider = parts[0];

  if (provider == "BEGIN" || provider == "END") {
    out.kind = provider == "BEGIN" ? ProbeKind::Begin : ProbeKind::End;
    if (parts.size() != 1) return fmt::format("{} probes take no arguments", provider);
    return std::nullopt;
  }
  if (provider == "uprobe" || provider == "u" || provider == "uretprobe" || provider == "ur") {
    out.kind = ProbeKind::Uprobe;
    out.is_return = provider == "uretprobe" || provider == "ur";
    if (parts.size() < 3)
      return fmt::format("{} needs a path and a symbol: {}:PATH:SYMBOL", provider, provider);
    // Everything up to the last ':' is the path (it may itself contain ':').
    for (size_t i = 1; i + 1 < parts.size(); ++i) {
      if (i > 1) out.path += ':';
      out.path += parts[i];
    }
    const std::string& target = parts.back();
    if (out.path.empty()) return fmt::format("uprobe needs a path: uprobe:PATH:SYMBOL");
    if (target.empty()) return fmt::format("uprobe needs a symbol: uprobe:PATH:SYMBOL");
    if (target[0] >= '0' && target[0] <= '9') {
      // An address names one instruction; an exit probe needs a whole function.
      if (out.is_return) {
        return fmt::format("{} needs a function name, not an address: {}:PATH:FUNCTION", provider,
                           provider);
      }
      const std::optional<uint64_t> address = parse_number(target);
      if (!address) return fmt::format("invalid address '{}'", target);
      out.address = *address;
      return std::nullopt;
    }
    const size_t plus = target.find('+');
    out.symbol = target.substr(0, plus);
    if (plus != std::string::npos) {
      const std::string offset_text = target.substr(plus + 1);
      const std::optional<uint64_t> offset = parse_number(offset_text);
      if (!offset) return fmt::format("invalid offset '{}'", offset_text);
      out.offset = *offset;
    }
    if (out.symbol.empty()) return fmt::format("uprobe needs a symbol: uprobe:PATH:SYMBOL");
    if (out.is_return && plus != std::string::npos) {
      return fmt::format("{} takes no offset: it probes every exit of '{}'", provider, out.symbol);
    }
    // '*' and '?' are wildcards, expanded per file when the probe is resolved.
    if (out.symbol.find('[') != std::string::npos) {
      return fmt::format("character classes are not supported in symbols: '{}'", out.symbol);
    }
    if (plus != std::string::npos && out.symbol.find_first_of("*?") != std::string::npos) {
      return fmt::format("an offset cannot follow a wildcard: '{}'", target);
    }
    return std::nullopt;
  }
  if (provider == "interval" || provider == "i") {
    out.kind = ProbeKind::Interval;
    // bpftrace's wording for a wrong number of parts.
    if (parts.size() != 3) return "interval probe type requires 2 arguments";
    return parse_interval(parts[1], parts[2], out.interval_ns);
  }
  out.kind = ProbeKind::Uprobe;
  return refuse_provider(provider);
}

std::optional<std::string> refuse_provider(std::string_view provider) {
  if (provider == "uprobe" || provider == "u" || provider == "uretprobe" || provider == "ur" ||
      provider == "BEGIN" || provider == "END" || provider == "interval" || provider == "i") {
    return std::nullopt;
  }
  if (contains(kKernelProviders, provider)) {
    return fmt::format("kernel-only probe type '{}': dprobe has no kernel side (probe user space "
                       "with uprobe:PATH:FUNCTION)",
                       provider);
  }
  if (contains(kLaterProviders, provider)) {
    return fmt::format("probe type '{}' is not supported yet", provider);
  }
  return fmt::format("unknown probe type '{}'", provider);
}

std::optional<std::string> parse_interval(std::string_view unit, std::string_view count,
                                          uint64_t& period_ns) {
  uint64_t unit_ns = 0;
  if (unit == "s") {
    unit_ns = 1'000'000'000;
  } else if (unit == "ms") {
    unit_ns = 1'000'000;
  } else if (unit == "us") {
    unit_ns = 1'000;
  } else if (unit != "hz") {
    // bpftrace's wording.
    return fmt::format("{} is not an accepted unit of time", unit);
  }
  // Decimal only, as bpftrace's stoull would read it (it also stops at the first non-digit;
  // dprobe refuses such text instead of guessing).
  const bool decimal =
      !count.empty() && count.find_first_not_of("0123456789") == std::string_view::npos;
  const std::optional<uint64_t> n = decimal ? parse_number(count) : std::nullopt;
  if (!n) return fmt::format("invalid interval count '{}': expected a decimal number", count);
  // bpftrace accepts 0 and then fails to attach; a zero period would spin dprobe's loop.
  if (*n == 0) return fmt::format("interval count must be at least 1, not '{}'", count);
  if (unit_ns == 0) {
    if (*n > 1'000'000'000) return fmt::format("interval rate {} hz is above 1 GHz", *n);
    period_ns = 1'000'000'000 / *n;
    return std::nullopt;
  }
  if (*n > UINT64_MAX / unit_ns) return fmt::format("interval '{}{}' is too long", count, unit);
  period_ns = *n * unit_ns;
  return std::nullopt;
}

} // namespace dprobe::lang
