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

namespace {

/// One segment of format_printf, appended to `out`; `field` is null when the argument is absent.
void append_segment(std::string& out, const FormatSegment& segment, FieldKind kind,
                    const uint8_t* field) {
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

void append_unsigned(std::string& out, uint64_t v) {
  char buf[20];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out.append(p, static_cast<size_t>(end - p));
}

void append_signed(std::string& out, int64_t v) {
  if (v < 0) {
    out += '-';
    append_unsigned(out, 0 - static_cast<uint64_t>(v));
  } else {
    append_unsigned(out, static_cast<uint64_t>(v));
  }
}

void append_hex(std::string& out, uint64_t v, const char* digits) {
  char buf[16];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = digits[v & 15];
    v >>= 4;
  } while (v != 0);
  out.append(p, static_cast<size_t>(end - p));
}

} // namespace

std::string format_printf(const ParsedFormat& format, std::span<const bytecode::FieldKind> kinds,
                          std::span<const uint8_t> args) {
  std::string out;
  size_t offset = 0;
  for (size_t i = 0; i < format.segments.size(); ++i) {
    const FieldKind kind = i < kinds.size() ? kinds[i] : FieldKind::Int;
    const uint32_t size = bytecode::field_size(kind);
    const bool present = i < kinds.size() && offset + size <= args.size();
    append_segment(out, format.segments[i], kind, present ? args.data() + offset : nullptr);
    offset += size;
  }
  out += format.trailing;
  return out;
}

CompiledFormat::CompiledFormat(const ParsedFormat& format,
                               std::span<const bytecode::FieldKind> kinds)
    : format_(&format), kinds_(kinds) {
  uint64_t offset = 0;
  for (size_t i = 0; i < format.segments.size(); ++i) {
    const FormatSegment& segment = format.segments[i];
    const Conversion& c = segment.conversion;
    Step step;
    const FieldKind kind = i < kinds.size() ? kinds[i] : FieldKind::Int;
    step.size = bytecode::field_size(kind);
    step.offset = static_cast<uint32_t>(offset);
    offset += step.size;
    step.prefix = render_prefix(segment.prefix);
    const bool plain = c.flags.empty() && c.width < 0 && c.precision < 0 && i < kinds.size() &&
                       step.prefix.find('\0') == std::string::npos;
    const bool wide = c.length == "l" || c.length == "ll" || c.length == "j" ||
                      c.length == "z" || c.length == "t";
    const bool narrow = c.length.empty();
    if (plain && kind == FieldKind::Int && (wide || narrow)) {
      switch (c.conversion) {
      case 'd':
      case 'i':
        step.op = wide ? Op::Int64 : Op::Int32;
        break;
      case 'u':
        step.op = wide ? Op::UInt64 : Op::UInt32;
        break;
      case 'x':
        step.op = wide ? Op::Hex64 : Op::Hex32;
        break;
      case 'X':
        step.op = wide ? Op::HexUpper64 : Op::HexUpper32;
        break;
      default:
        break;
      }
    } else if (plain && kind == FieldKind::String && narrow && c.conversion == 's') {
      step.op = Op::String;
    }
    steps_.push_back(std::move(step));
  }
  args_size_ = static_cast<uint32_t>(std::min<uint64_t>(offset, UINT32_MAX));
}

void CompiledFormat::append(std::string& out, std::span<const uint8_t> args) const {
  // Missing arguments: the generic path knows what to print for them.
  const bool complete = args.size() >= args_size_;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    if (step.op == Op::Generic || !complete) {
      const FieldKind kind = i < kinds_.size() ? kinds_[i] : FieldKind::Int;
      const bool present = i < kinds_.size() && uint64_t{step.offset} + step.size <= args.size();
      append_segment(out, format_->segments[i], kind,
                     present ? args.data() + step.offset : nullptr);
      continue;
    }
    out += step.prefix;
    const uint8_t* field = args.data() + step.offset;
    const uint64_t v = step.op == Op::String ? 0 : bytecode::load_u64_le(field);
    switch (step.op) {
    case Op::Int32:
      append_signed(out, static_cast<int32_t>(static_cast<uint32_t>(v)));
      break;
    case Op::UInt32:
      append_unsigned(out, static_cast<uint32_t>(v));
      break;
    case Op::Int64:
      append_signed(out, static_cast<int64_t>(v));
      break;
    case Op::UInt64:
      append_unsigned(out, v);
      break;
    case Op::Hex32:
      append_hex(out, static_cast<uint32_t>(v), "0123456789abcdef");
      break;
    case Op::Hex64:
      append_hex(out, v, "0123456789abcdef");
      break;
    case Op::HexUpper32:
      append_hex(out, static_cast<uint32_t>(v), "0123456789ABCDEF");
      break;
    case Op::HexUpper64:
      append_hex(out, v, "0123456789ABCDEF");
      break;
    case Op::String:
      out.append(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
      break;
    case Op::Generic:
      break;
    }
  }
  out += format_->trailing;
}

} // namespace dprobe::output
