// User mistakes tied to a place in the script, printed like a compiler does:
//   FILE:LINE:COL: error: MESSAGE
//   <the source line>
//   <spaces>^~~~
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dprobe::lang {

/// A place in the source: 1-based line and column (bytes), and how many bytes of that line the
/// construct spans (for the ~~~ underline; 1 when unknown).
struct SourceLocation {
  int line = 1;
  int column = 1;
  int length = 1;
};

struct Diagnostic {
  SourceLocation location;
  std::string message;
};

/// The three-line text of one diagnostic (no trailing newline).
[[nodiscard]] std::string format_diagnostic(std::string_view source, std::string_view filename,
                                            int line, int column, std::string_view message,
                                            int length = 1);

/// Collects diagnostics while a pass runs; the pipeline stops after a pass that reported any.
class Diagnostics {
 public:
  void error(SourceLocation location, std::string message);
  [[nodiscard]] bool empty() const { return errors_.empty(); }
  [[nodiscard]] const std::vector<Diagnostic>& errors() const { return errors_; }
  /// All diagnostics, each formatted, separated by newlines (no trailing newline).
  [[nodiscard]] std::string format(std::string_view source, std::string_view filename) const;

 private:
  std::vector<Diagnostic> errors_;
};

} // namespace dprobe::lang
