// Helpers for driving target programs: pipes to their stdin/stdout, reading output while the
// tracer keeps handling events, and an event pump.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "process/tracee.h"

namespace dprobe::process::testing {

/// The parent's ends of a target's stdin and stdout.
class TargetIo {
 public:
  TargetIo() = default;
  TargetIo(int in, int out) : in_(in), out_(out) {}
  TargetIo(TargetIo&& other) noexcept;
  TargetIo& operator=(TargetIo&& other) noexcept;
  ~TargetIo();

  void send(std::string_view line); ///< writes line + "\n"
  void close_input();
  /// One line without its newline; calls `pump` every few milliseconds while waiting.
  /// nullopt on end of file or after timeout_ms.
  std::optional<std::string> read_line(int timeout_ms, const std::function<void()>& pump = {});
  /// Everything until end of file (or timeout), pumping meanwhile.
  std::string read_all(int timeout_ms, const std::function<void()>& pump = {});

 private:
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

/// An untraced child running argv, with piped stdin/stdout. Killed and reaped on destruction.
class TargetProcess {
 public:
  static std::unique_ptr<TargetProcess> spawn(const std::vector<std::string>& argv);
  ~TargetProcess();
  pid_t pid() const { return pid_; }
  TargetIo& io() { return io_; }
  /// waitpid status; -1 if it did not end within timeout_ms.
  int wait_status(int timeout_ms);
  void forget() { reaped_ = true; } ///< someone else reaped it (a tracer)

 private:
  pid_t pid_ = -1;
  TargetIo io_;
  bool reaped_ = false;
};

/// A traced launch with piped stdin/stdout. A target still alive at the end is killed and
/// reaped, so tests leave no children behind.
struct Launched {
  Launched() = default;
  Launched(Launched&&) = default;
  ~Launched();
  std::unique_ptr<Tracee> tracee;
  TargetIo io;
};
Launched launch_with_pipes(const std::vector<std::string>& argv);

/// Records every event; resumes held threads the way an uninterested tracer would (signals
/// delivered, fork children detached, exec continued).
class EventPump {
 public:
  explicit EventPump(Tracee& tracee) : tracee_(tracee) {}
  /// Handles all events available within timeout_ms (0: only those already there).
  void pump(int timeout_ms = 0);
  /// Pumps until an event of `kind` not returned before is recorded, or timeout; returns it.
  std::optional<Event> wait_for(EventKind kind, int timeout_ms);
  std::function<void()> as_function() {
    return [this] { pump(0); };
  }
  const std::vector<Event>& events() const { return events_; }
  size_t count(EventKind kind) const;

 private:
  void handle(const Event& e);
  Tracee& tracee_;
  std::vector<Event> events_;
  std::vector<bool> claimed_;
};

/// The address printed by a target as "... probed=0x..." (0 if absent).
uint64_t parse_probed_address(const std::string& line);

/// FNV-1a hash and size of a file, as text.
std::string file_checksum(const std::string& path);

} // namespace dprobe::process::testing
