// Errors as values: Result<T> = std::expected<T, Error>.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace dprobe {

/// A failure with enough context to print as one line: "what: why".
struct Error {
  std::string message;  ///< names the object and the operation, e.g. "/proc/42/mem: write at 0x1000"
  int errno_value = 0;  ///< 0 when the failure is not an OS error

  /// The full one-line text, with strerror appended for OS errors.
  [[nodiscard]] std::string text() const {
    if (errno_value == 0) return message;
    return fmt::format("{}: {}", message, std::strerror(errno_value));
  }
};

template <class T>
using Result = std::expected<T, Error>;

/// Unit result for operations that return nothing on success.
using Status = std::expected<void, Error>;

/// Builds an unexpected Error from a format string.
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail(fmt::format_string<Args...> f, Args&&... args) {
  return std::unexpected(Error{fmt::format(f, std::forward<Args>(args)...), 0});
}

/// Builds an unexpected Error carrying the current errno.
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail_errno(fmt::format_string<Args...> f, Args&&... args) {
  int saved = errno;
  return std::unexpected(Error{fmt::format(f, std::forward<Args>(args)...), saved});
}

/// Same, with an explicit error number (for APIs that return it instead of setting errno).
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail_code(int code, fmt::format_string<Args...> f,
                                               Args&&... args) {
  return std::unexpected(Error{fmt::format(f, std::forward<Args>(args)...), code});
}

/// Prefixes an error with more context while propagating it.
[[nodiscard]] inline std::unexpected<Error> with_context(const Error& e, std::string_view context) {
  return std::unexpected(Error{fmt::format("{}: {}", context, e.message), e.errno_value});
}

}  // namespace dprobe
