#include "output/printf_format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

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
                    const uint8_t* field, StackFormatter* stacks) {
  std::string text = render_prefix(segment.prefix);
  const Conversion& c = segment.conversion;
  if (c.argument_class() == ArgumentClass::String) {
    std::string value;
    if (field != nullptr && kind == FieldKind::String) {
      value.assign(reinterpret_cast<const char*>(field), bytecode::string_field_length(field));
    } else if (field != nullptr && bytecode::is_stack_field(kind)) {
      value = stack_text_or_empty(stacks, bytecode::load_u64_le(field), kind, 8);
    }
    text += run_snprintf(c_format(c), value.c_str());
  } else if (c.argument_class() == ArgumentClass::Buffer) {
    // bpftrace's %r: printable bytes as they are, every other byte as \xNN.
    if (field != nullptr && kind == FieldKind::Buffer) {
      uint64_t length = bytecode::load_u64_le(field);
      if (length > bytecode::kMaxBufferLength) length = bytecode::kMaxBufferLength;
      for (uint64_t i = 0; i < length; ++i) {
        const uint8_t byte = field[8 + i];
        if (byte >= 0x20 && byte < 0x7f) {
          text += static_cast<char>(byte);
        } else {
          text += fmt::format("\\x{:02x}", byte);
        }
      }
    }
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

constexpr char kDigitPairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                               "31323334353637383940414243444546474849505152535455565758596061"
                               "62636465666768697071727374757677787980818283848586878889909192"
                               "93949596979899";

/// Small copies inline: the library memcpy's call costs more than the bytes here.
char* copy_small(char* dst, const char* src, size_t n) {
  for (size_t i = 0; i < n; ++i)
    dst[i] = src[i];
  return dst + n;
}

/// Writes `v` in decimal at dst (at most 20 bytes), returns the end.
char* write_unsigned(char* dst, uint64_t v) {
  unsigned digits = 1;
  for (uint64_t rest = v; rest >= 10; rest /= 10)
    ++digits;
  char* p = dst + digits;
  while (v >= 100) {
    const unsigned pair = static_cast<unsigned>(v % 100) * 2;
    v /= 100;
    *--p = kDigitPairs[pair + 1];
    *--p = kDigitPairs[pair];
  }
  if (v >= 10) {
    const unsigned pair = static_cast<unsigned>(v) * 2;
    *--p = kDigitPairs[pair + 1];
    *--p = kDigitPairs[pair];
  } else {
    *--p = static_cast<char>('0' + v);
  }
  return dst + digits;
}

char* write_signed(char* dst, int64_t v) {
  if (v < 0) {
    *dst++ = '-';
    return write_unsigned(dst, 0 - static_cast<uint64_t>(v));
  }
  return write_unsigned(dst, static_cast<uint64_t>(v));
}

char* write_hex(char* dst, uint64_t v, const char* digits) {
  char buf[16];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = digits[v & 15];
    v >>= 4;
  } while (v != 0);
  return copy_small(dst, p, static_cast<size_t>(end - p));
}

} // namespace

std::string format_printf(const ParsedFormat& format, std::span<const bytecode::FieldKind> kinds,
                          std::span<const uint8_t> args, StackFormatter* stacks) {
  std::string out;
  size_t offset = 0;
  for (size_t i = 0; i < format.segments.size(); ++i) {
    const FieldKind kind = i < kinds.size() ? kinds[i] : FieldKind::Int;
    const uint32_t size = bytecode::field_size(kind);
    const bool present = i < kinds.size() && offset + size <= args.size();
    append_segment(out, format.segments[i], kind, present ? args.data() + offset : nullptr,
                   stacks);
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
    if (step.op == Op::Generic) fast_ = false;
    max_length_ += step.prefix.size() + kMaxValueLength;
    steps_.push_back(std::move(step));
  }
  max_length_ += format.trailing.size();
  args_size_ = static_cast<uint32_t>(std::min<uint64_t>(offset, UINT32_MAX));
}

char* CompiledFormat::write_value(char* dst, const Step& step, const uint8_t* args) {
  const uint8_t* field = args + step.offset;
  const uint64_t v = step.op == Op::String ? 0 : bytecode::load_u64_le(field);
  switch (step.op) {
  case Op::Int32:
    return write_signed(dst, static_cast<int32_t>(static_cast<uint32_t>(v)));
  case Op::UInt32:
    return write_unsigned(dst, static_cast<uint32_t>(v));
  case Op::Int64:
    return write_signed(dst, static_cast<int64_t>(v));
  case Op::UInt64:
    return write_unsigned(dst, v);
  case Op::Hex32:
    return write_hex(dst, static_cast<uint32_t>(v), "0123456789abcdef");
  case Op::Hex64:
    return write_hex(dst, v, "0123456789abcdef");
  case Op::HexUpper32:
    return write_hex(dst, static_cast<uint32_t>(v), "0123456789ABCDEF");
  case Op::HexUpper64:
    return write_hex(dst, v, "0123456789ABCDEF");
  case Op::String: {
    const uint32_t n = bytecode::string_field_length(field);
    std::memcpy(dst, field, n);
    return dst + n;
  }
  case Op::Generic:
    break;
  }
  return dst;
}

char* CompiledFormat::write(char* dst, std::span<const uint8_t> args) const {
  for (const Step& step : steps_) {
    dst = copy_small(dst, step.prefix.data(), step.prefix.size());
    dst = write_value(dst, step, args.data());
  }
  return copy_small(dst, format_->trailing.data(), format_->trailing.size());
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
                     present ? args.data() + step.offset : nullptr, nullptr);
      continue;
    }
    out += step.prefix;
    char value[kMaxValueLength];
    out.append(value, static_cast<size_t>(write_value(value, step, args.data()) - value));
  }
  out += format_->trailing;
}

} // namespace dprobe::output
