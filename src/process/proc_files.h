// Small readers for /proc files the tracer consults; the parsers are pure and unit-tested.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dprobe::process {

/// Reads a whole (pseudo-)file. Errors name the path and carry errno.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

/// The value of "Key:\tvalue" in /proc/PID/status text, trimmed. Pure.
[[nodiscard]] std::optional<std::string> status_field(std::string_view status_text,
                                                      std::string_view key);

/// Same, parsed as an integer.
[[nodiscard]] std::optional<long> status_number(std::string_view status_text, std::string_view key);

/// The one-letter state from /proc/PID/stat text ('R', 'S', 'Z', ...). Pure; copes with a comm
/// containing spaces and parentheses.
[[nodiscard]] std::optional<char> stat_state(std::string_view stat_text);

/// State letter of one thread (/proc/PID/task/TID/stat); nullopt when it is gone.
[[nodiscard]] std::optional<char> thread_state(pid_t pid, pid_t tid);

/// Thread ids listed in /proc/PID/task, sorted.
[[nodiscard]] Result<std::vector<pid_t>> list_tasks(pid_t pid);

/// The command name of a process (/proc/PID/comm without the newline); "?" when unreadable.
[[nodiscard]] std::string read_comm(pid_t pid);

} // namespace dprobe::process
