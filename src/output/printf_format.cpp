#include "output/printf_format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace dprobe::output {

namespace {

using bytecode::FieldKind;

// Wider requests are clamped: a script must not make dprobe allocate without bound.
constexpr int kMaxWidth = 65536;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Reads digits at `pos`; -1 when there are none.
int read_number(std::string_view s, size_t& pos) {
  if (pos >= s.size() || !is_digit(s[pos])) return -1;
  int value = 0;
  while (pos < s.size() && is_digit(s[pos])) {
    value = std::min(value * 10 + (s[pos] - '0'), kMaxWidth);
    ++pos;
  }
  return value;
}

/// Tries to read a conversion starting at the '%' at `start`; on success sets `end`.
bool match_conversion(std::string_view s, size_t start, size_t& end, Conversion& out) {
  size_t pos = start + 1;
  out = Conversion{};
  while (pos < s.size() && std::strchr("-+ #0", s[pos]) != nullptr && s[pos] != '\0') {
    out.flags += s[pos++];
  }
  out.width = read_number(s, pos);
  if (pos + 1 < s.size() && s[pos] == '.' && is_digit(s[pos + 1])) {
    ++pos;
    out.precision = read_number(s, pos);
  }
  for (std::string_view length : {"hh", "h", "ll", "l", "j", "z", "t"}) {
    if (s.substr(pos, length.size()) == length) {
      out.length = std::string(length);
      pos += length.size();
      break;
    }
  }
  if (pos >= s.size()) return false;
  const char c = s[pos];
  const bool integer = std::strchr("diuoxXp", c) != nullptr;
  const bool plain_only = c == 'c' || c == 's' || c == 'r';
  if (c == '\0' || (!integer && !(plain_only && out.length.empty()))) return false;
  out.conversion = c;
  end = pos + 1;
  out.text = std::string(s.substr(start, end - start));
  return true;
}

/// The prefix as snprintf would print it: "%%" is '%', other text (including stray '%') as is.
std::string render_prefix(std::string_view prefix) {
  std::string out;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (prefix[i] == '%' && i + 1 < prefix.size() && prefix[i + 1] == '%') ++i;
    out += prefix[i];
  }
  return out;
}

std::string c_format(const Conversion& c, const char* length_override = nullptr) {
  std::string f = "%" + c.flags;
  if (c.width >= 0) f += std::to_string(c.width);
  if (c.precision >= 0) f += "." + std::to_string(c.precision);
  f += length_override != nullptr ? length_override : c.length;
  f += c.conversion;
  return f;
}

template <class... Args> std::string run_snprintf(const std::string& format, Args... args) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  const int needed = std::snprintf(nullptr, 0, format.c_str(), args...);
  if (needed <= 0) return {};
  std::string out(static_cast<size_t>(needed) + 1, '\0');
  std::snprintf(out.data(), out.size(), format.c_str(), args...);
#pragma GCC diagnostic pop
  out.resize(static_cast<size_t>(needed));
  return out;
}

/// One integer conversion, with the argument narrowed to the C type the conversion reads
/// (as bpftrace does before calling snprintf).
std::string format_integer(const Conversion& c, uint64_t value) {
  const std::string format = c_format(c);
  if (c.conversion == 'p') return run_snprintf(format, reinterpret_cast<void*>(value));
  if (c.conversion == 'c' || c.length == "hh") {
    return run_snprintf(format, static_cast<int>(static_cast<char>(value)));
  }
  if (c.length == "h") return run_snprintf(format, static_cast<int>(static_cast<short>(value)));
  if (c.length.empty()) return run_snprintf(format, static_cast<int>(value));
  return run_snprintf(format, static_cast<long long>(value));
}

} // namespace

ArgumentClass Conversion::argument_class() const {
  if (conversion == 's') return ArgumentClass::String;
  if (conversion == 'r') return ArgumentClass::Buffer;
  return ArgumentClass::Integer;
}

ParsedFormat parse_printf_format(std::string_view format) {
  ParsedFormat parsed;
  size_t segment_start = 0;
  size_t pos = 0;
  while (pos < format.size()) {
    if (format[pos] != '%') {
      ++pos;
      continue;
    }
    size_t end = 0;
    Conversion conversion;
    if (!match_conversion(format, pos, end, conversion)) {
      ++pos;
      continue;
    }
    parsed.segments.push_back(
        FormatSegment{std::string(format.substr(segment_start, pos - segment_start)), conversion});
    segment_start = pos = end;
  }
  parsed.trailing = std::string(format.substr(segment_start));
  return parsed;
}

std::string format_printf(const ParsedFormat& format, std::span<const bytecode::FieldKind> kinds,
                          std::span<const uint8_t> args) {
  std::string out;
  size_t offset = 0;
  for (size_t i = 0; i < format.segments.size(); ++i) {
    const FormatSegment& segment = format.segments[i];
    const FieldKind kind = i < kinds.size() ? kinds[i] : FieldKind::Int;
    const uint32_t size = bytecode::field_size(kind);
    const bool present = i < kinds.size() && offset + size <= args.size();
    const uint8_t* field = present ? args.data() + offset : nullptr;
    offset += size;

    std::string text = render_prefix(segment.prefix);
    const Conversion& c = segment.conversion;
    if (c.argument_class() == ArgumentClass::String) {
      std::string value;
      if (field != nullptr && kind == FieldKind::String) {
        value.assign(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
      }
      text += run_snprintf(c_format(c), value.c_str());
    } else if (c.argument_class() == ArgumentClass::Integer) {
      const uint64_t value =
          field != nullptr && kind == FieldKind::Int ? bytecode::load_u64_le(field) : 0;
      text += format_integer(c, value);
    }
    // bpftrace prints each segment as a C string: it ends at the first NUL.
    const size_t nul = text.find('\0');
    if (nul != std::string::npos) text.resize(nul);
    out += text;
  }
  out += format.trailing;
  return out;
}

} // namespace dprobe::output
