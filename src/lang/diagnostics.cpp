#include "lang/diagnostics.h"

#include <algorithm>

#include <fmt/format.h>

namespace dprobe::lang {

namespace {

std::string_view source_line(std::string_view source, int line) {
  size_t start = 0;
  for (int current = 1; current < line; ++current) {
    const size_t newline = source.find('\n', start);
    if (newline == std::string_view::npos) return {};
    start = newline + 1;
  }
  const size_t end = source.find('\n', start);
  std::string_view text =
      source.substr(start, end == std::string_view::npos ? source.size() - start : end - start);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

} // namespace

std::string format_diagnostic(std::string_view source, std::string_view filename, int line,
                              int column, std::string_view message, int length) {
  const std::string_view text = source_line(source, line);
  // Tabs before the column are kept so the caret lines up however the terminal expands them.
  std::string marker;
  const size_t indent = column > 1 ? static_cast<size_t>(column - 1) : 0;
  for (size_t i = 0; i < indent; ++i)
    marker += i < text.size() && text[i] == '\t' ? '\t' : ' ';
  marker += '^';
  const size_t rest = text.size() > indent + 1 ? text.size() - indent - 1 : 0;
  marker.append(std::min(static_cast<size_t>(std::max(length - 1, 0)), rest), '~');
  return fmt::format("{}:{}:{}: error: {}\n{}\n{}", filename, line, column, message, text, marker);
}

void Diagnostics::error(SourceLocation location, std::string message) {
  errors_.push_back(Diagnostic{location, std::move(message)});
}

std::string Diagnostics::format(std::string_view source, std::string_view filename) const {
  std::string out;
  for (const Diagnostic& d : errors_) {
    if (!out.empty()) out += '\n';
    out += format_diagnostic(source, filename, d.location.line, d.location.column, d.message,
                             d.location.length);
  }
  return out;
}

} // namespace dprobe::lang
