#include "target_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace dprobe::process::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

} // namespace

TargetIo::TargetIo(TargetIo&& other) noexcept
    : in_(std::exchange(other.in_, -1)), out_(std::exchange(other.out_, -1)),
      buffer_(std::move(other.buffer_)), eof_(other.eof_) {}

TargetIo& TargetIo::operator=(TargetIo&& other) noexcept {
  if (this != &other) {
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
    in_ = std::exchange(other.in_, -1);
    out_ = std::exchange(other.out_, -1);
    buffer_ = std::move(other.buffer_);
    eof_ = other.eof_;
  }
  return *this;
}

TargetIo::~TargetIo() {
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
  in_ = out_ = -1;
}

void TargetIo::send(std::string_view line) {
  std::string text = std::string(line) + "\n";
  ASSERT_EQ(::write(in_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

void TargetIo::close_input() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

std::optional<std::string> TargetIo::read_line(int timeout_ms, const std::function<void()>& pump) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (eof_) return std::nullopt;
    int left = ms_left(deadline);
    if (left == 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int rc = ::poll(&p, 1, pump ? std::min(left, 5) : left);
    if (rc > 0) {
      char chunk[4096];
      ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) {
        eof_ = true;
      } else {
        buffer_.append(chunk, static_cast<size_t>(n));
      }
    }
    if (pump) pump();
  }
}

std::string TargetIo::read_all(int timeout_ms, const std::function<void()>& pump) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string out;
  while (auto line = read_line(ms_left(deadline), pump))
    out += *line + "\n";
  return out;
}

std::unique_ptr<TargetProcess> TargetProcess::spawn(const std::vector<std::string>& argv) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return nullptr;
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::execv(args[0], args.data());
    ::_exit(126);
  }
  ::close(in[0]);
  ::close(out[1]);
  auto p = std::unique_ptr<TargetProcess>(new TargetProcess());
  p->pid_ = pid;
  p->io_ = TargetIo(in[1], out[0]);
  return p;
}

TargetProcess::~TargetProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, __WALL);
  }
}

int TargetProcess::wait_status(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    if (r < 0 || Clock::now() > deadline) return -1;
    ::usleep(1000);
  }
}

Launched::~Launched() {
  if (!tracee || tracee->exited()) return;
  const pid_t pid = tracee->pid();
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 200 && !tracee->exited(); ++i) {
    auto e = tracee->next_event(10);
    if (!e) break;
  }
  tracee.reset();
  ::waitpid(pid, nullptr, WNOHANG | __WALL);
}

Launched launch_with_pipes(const std::vector<std::string>& argv) {
  int in[2];
  int out[2];
  Launched result;
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return result;
  LaunchOptions options;
  options.stdin_fd = in[0];
  options.stdout_fd = out[1];
  auto tracee = Tracee::launch(argv, options);
  ::close(in[0]);
  ::close(out[1]);
  result.io = TargetIo(in[1], out[0]);
  EXPECT_TRUE(tracee.has_value()) << (tracee ? "" : tracee.error().text());
  if (tracee) result.tracee = std::move(*tracee);
  return result;
}

void EventPump::handle(const Event& e) {
  events_.push_back(e);
  switch (e.kind) {
  case EventKind::Trap:
  case EventKind::Signal:
    EXPECT_TRUE(tracee_.resume(e.tid, e.signal));
    break;
  case EventKind::Exec:
    EXPECT_TRUE(tracee_.resume(e.tid));
    break;
  case EventKind::Fork:
  case EventKind::VFork:
    EXPECT_TRUE(tracee_.detach_child(e.child));
    EXPECT_TRUE(tracee_.resume(e.tid));
    break;
  case EventKind::ThreadExited:
  case EventKind::Exited:
  case EventKind::Killed:
    break;
  }
}

void EventPump::pump(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    // Queued events come out even after the process is gone; then next_event fails.
    auto e = tracee_.next_event(ms_left(deadline));
    if (!e) {
      ASSERT_TRUE(tracee_.exited()) << e.error().text();
      return;
    }
    if (!e->has_value()) return;
    handle(**e);
  }
}

std::optional<Event> EventPump::wait_for(EventKind kind, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    claimed_.resize(events_.size(), false);
    for (size_t i = 0; i < events_.size(); ++i) {
      if (!claimed_[i] && events_[i].kind == kind) {
        claimed_[i] = true;
        return events_[i];
      }
    }
    if (ms_left(deadline) == 0) return std::nullopt;
    auto e = tracee_.next_event(std::min(ms_left(deadline), 20));
    if (!e) return std::nullopt;
    if (e->has_value()) handle(**e);
  }
}

size_t EventPump::count(EventKind kind) const {
  size_t n = 0;
  for (const auto& e : events_)
    n += e.kind == kind ? 1 : 0;
  return n;
}

uint64_t parse_probed_address(const std::string& line) {
  size_t at = line.find("probed=");
  if (at == std::string::npos) return 0;
  return std::stoull(line.substr(at + 7), nullptr, 16);
}

std::string file_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes)
    h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}:{}", h, bytes.size());
}

} // namespace dprobe::process::testing
