// map_shared_region, map_code and unmap in real targets.
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "common/fd.h"
#include "process/auxv.h"
#include "process/maps.h"
#include "process/proc_files.h"
#include "process/tracee.h"
#include "target_process.h"

namespace dprobe::process {
namespace {

using testing::EventPump;
using testing::launch_with_pipes;

// fd number -> what it points at.
std::map<std::string, std::string> open_fds(pid_t pid) {
  std::map<std::string, std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid))) {
    std::error_code ec;
    out[entry.path().filename().string()] = std::filesystem::read_symlink(entry.path(), ec);
  }
  return out;
}

std::string maps_text(pid_t pid) {
  return read_text_file(fmt::format("/proc/{}/maps", pid)).value_or("unreadable");
}

std::optional<Mapping> mapping_at(pid_t pid, uint64_t start) {
  auto maps = read_maps(pid);
  if (!maps) return std::nullopt;
  for (const auto& m : *maps) {
    if (m.start == start) return m;
  }
  return std::nullopt;
}

uint64_t load64(const void* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// A region_target that printed "ready" and is stopped (world stopped) in its read of stdin.
testing::Launched ready_region_target(std::unique_ptr<EventPump>& pump) {
  auto launched = launch_with_pipes({REGION_TARGET});
  if (!launched.tracee) return launched;
  pump = std::make_unique<EventPump>(*launched.tracee);
  EXPECT_TRUE(launched.tracee->resume(launched.tracee->pid()));
  EXPECT_EQ(launched.io.read_line(1000, pump->as_function()), "ready");
  EXPECT_TRUE(launched.tracee->stop_all());
  return launched;
}

TEST(SharedRegion, BothSidesSeeTheSamePages) {
  std::unique_ptr<EventPump> pump;
  auto launched = ready_region_target(pump);
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  const auto fds_before = open_fds(pid);

  auto region = tracee.map_shared_region(pid, 10000);
  ASSERT_TRUE(region) << region.error().text();
  const SharedMapping& shared = **region;
  EXPECT_EQ(shared.length, 12288u); // whole pages
  ASSERT_NE(shared.local, nullptr);
  EXPECT_EQ(open_fds(pid), fds_before);
  auto m = mapping_at(pid, shared.target_address);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->end, shared.target_address + 12288);
  EXPECT_EQ(m->path, "/memfd:dprobe-region");
  EXPECT_TRUE(m->deleted);
  EXPECT_TRUE(m->readable && m->writable && !m->executable && !m->is_private);
  EXPECT_NE(maps_text(pid).find("/memfd:dprobe-region (deleted)"), std::string::npos);

  // dprobe -> target, through the stopped target's memory.
  auto* local = static_cast<uint8_t*>(shared.local);
  const uint64_t magic = 0x1122334455667788;
  std::memcpy(local + 16, &magic, sizeof magic);
  std::array<uint8_t, 8> seen{};
  ASSERT_TRUE(tracee.read_memory(shared.target_address + 16, seen));
  EXPECT_EQ(load64(seen.data()), magic);
  // target memory -> dprobe, on the last page.
  const std::array<uint8_t, 4> data{9, 8, 7, 6};
  ASSERT_TRUE(tracee.write_memory(shared.target_address + 12284, data));
  EXPECT_EQ(std::memcmp(local + 12284, data.data(), data.size()), 0);

  // And with the target running its own loads and stores.
  ASSERT_TRUE(tracee.resume_all());
  const uint64_t value = 424242;
  std::memcpy(local + 64, &value, sizeof value);
  launched.io.send(fmt::format("peek {:x}", shared.target_address + 64));
  EXPECT_EQ(launched.io.read_line(1000, pump->as_function()), "424242");
  launched.io.send(fmt::format("poke {:x} 777", shared.target_address + 4096));
  EXPECT_EQ(launched.io.read_line(1000, pump->as_function()), "ok");
  EXPECT_EQ(load64(local + 4096), 777u);

  // Dropping dprobe's view leaves the target's mapping working.
  const uint64_t target_address = shared.target_address;
  region->reset();
  launched.io.send(fmt::format("peek {:x}", target_address + 64));
  EXPECT_EQ(launched.io.read_line(1000, pump->as_function()), "424242");
  launched.io.send("exit");
  auto exited = pump->wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 5);
}

TEST(SharedRegion, TheTargetCannotShrinkIt) {
  // The region is untrusted: a target that truncated the file would make dprobe fault.
  std::unique_ptr<EventPump> pump;
  auto launched = ready_region_target(pump);
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  auto region = tracee.map_shared_region(tracee.pid(), 4096);
  ASSERT_TRUE(region) << region.error().text();
  auto seals = fmt::format("/proc/{}/map_files/{:x}-{:x}", tracee.pid(), (*region)->target_address,
                           (*region)->target_address + 4096);
  UniqueFd fd(::open(seals.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) GTEST_SKIP() << seals << ": " << std::strerror(errno);
  // Kernels since 6.3 add F_SEAL_EXEC (the memfd is created non-executable).
  constexpr int kSealExec = 0x20;
  const int size_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  EXPECT_EQ(::fcntl(fd.get(), F_GET_SEALS) & ~kSealExec, size_seals);
  EXPECT_NE(::ftruncate(fd.get(), 0), 0);
  EXPECT_EQ(errno, EPERM);
}

TEST(SharedRegion, FromAWorkerThreadOfARunningProcess) {
  auto launched = launch_with_pipes({THREADS_TARGET, "serve", "2"});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  EventPump pump(tracee);
  ASSERT_TRUE(tracee.resume(pid));
  ASSERT_TRUE(launched.io.read_line(1000, pump.as_function()).has_value());
  ASSERT_TRUE(tracee.stop_all());
  const auto threads = tracee.threads();
  ASSERT_EQ(threads.size(), 3u);
  const pid_t worker = threads.back();
  ASSERT_NE(worker, pid);
  const auto fds_before = open_fds(pid);

  auto region = tracee.map_shared_region(worker, 1);
  ASSERT_TRUE(region) << region.error().text();
  EXPECT_EQ((*region)->length, 4096u);
  EXPECT_EQ(open_fds(pid), fds_before);
  auto m = mapping_at(pid, (*region)->target_address);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->path, "/memfd:dprobe-region");

  static_cast<uint8_t*>((*region)->local)[0] = 0x5a;
  std::array<uint8_t, 1> seen{};
  ASSERT_TRUE(tracee.read_memory((*region)->target_address, seen));
  EXPECT_EQ(seen[0], 0x5a);

  ASSERT_TRUE(tracee.resume_all());
  launched.io.send("call 5");
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "probed(5)=16");
  launched.io.send("exit");
  auto exited = pump.wait_for(EventKind::Exited, 2000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
}

TEST(SharedRegion, InAStaticProgramBeforeItsFirstInstruction) {
  auto launched = launch_with_pipes({STATIC_TARGET});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  auto region = tracee.map_shared_region(tracee.pid(), 8192);
  ASSERT_TRUE(region) << region.error().text();
  EXPECT_TRUE(mapping_at(tracee.pid(), (*region)->target_address).has_value());
  ASSERT_TRUE(tracee.resume(tracee.pid()));
  EventPump pump(tracee);
  EXPECT_EQ(launched.io.read_all(1000, pump.as_function()), "static ok\n");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 4);
}

TEST(SharedRegion, FailureLeavesMapsAndFdsAsTheyWere) {
  auto launched = launch_with_pipes({REGION_TARGET});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();
  const std::string maps_before = maps_text(pid);
  const auto fds_before = open_fds(pid);

  // 1 PiB: more than the user address space.
  auto region = tracee.map_shared_region(pid, size_t{1} << 50);
  ASSERT_FALSE(region);
  EXPECT_EQ(region.error().text(),
            fmt::format("shared region of 1125899906842624 bytes in process {}: remote mmap in "
                        "thread {}: Cannot allocate memory",
                        pid, pid));
  EXPECT_EQ(maps_text(pid), maps_before);
  EXPECT_EQ(open_fds(pid), fds_before);

  auto empty = tracee.map_shared_region(pid, 0);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().text(),
            fmt::format("shared region of 0 bytes in process {}: invalid length", pid));
  EXPECT_EQ(maps_text(pid), maps_before);

  // The program still runs normally.
  ASSERT_TRUE(tracee.resume(pid));
  EventPump pump(tracee);
  EXPECT_EQ(launched.io.read_line(1000, pump.as_function()), "ready");
  launched.io.send("exit");
  auto exited = pump.wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 5);
}

TEST(MapCode, ReadExecPagesHoldTheBytesAndRun) {
  std::unique_ptr<EventPump> pump;
  auto launched = ready_region_target(pump);
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const pid_t pid = tracee.pid();

  std::vector<uint8_t> code(5000, 0xcc);                             // int3 filler over two pages
  const std::array<uint8_t, 6> return_42{0xb8, 0x2a, 0, 0, 0, 0xc3}; // mov eax, 42; ret
  std::copy(return_42.begin(), return_42.end(), code.begin());
  code.back() = 0x90;
  auto address = tracee.map_code(pid, code, PROT_READ | PROT_EXEC);
  ASSERT_TRUE(address) << address.error().text();
  std::vector<uint8_t> back(code.size());
  ASSERT_TRUE(tracee.read_memory(*address, back));
  EXPECT_EQ(back, code);
  auto m = mapping_at(pid, *address);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->end, *address + 8192);
  EXPECT_TRUE(m->readable && !m->writable && m->executable && m->is_private);
  EXPECT_EQ(m->path, "");

  ASSERT_TRUE(tracee.resume_all());
  launched.io.send(fmt::format("run {:x}", *address));
  EXPECT_EQ(launched.io.read_line(1000, pump->as_function()), "ran=42");

  ASSERT_TRUE(tracee.stop_all());
  ASSERT_TRUE(tracee.unmap(pid, *address, code.size()));
  EXPECT_FALSE(mapping_at(pid, *address).has_value());
  EXPECT_FALSE(tracee.read_memory(*address, back));
  ASSERT_TRUE(tracee.resume_all());
  launched.io.send("exit");
  auto exited = pump->wait_for(EventKind::Exited, 1000);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 5);
}

TEST(MapCode, EmptyCodeIsAnError) {
  auto launched = launch_with_pipes({REGION_TARGET});
  ASSERT_TRUE(launched.tracee);
  Tracee& tracee = *launched.tracee;
  const std::string maps_before = maps_text(tracee.pid());
  auto address = tracee.map_code(tracee.pid(), {}, PROT_READ | PROT_EXEC);
  ASSERT_FALSE(address);
  EXPECT_EQ(address.error().text(),
            fmt::format("code of 0 bytes in process {}: nothing to map", tracee.pid()));
  EXPECT_EQ(maps_text(tracee.pid()), maps_before);
}

TEST(Hwcap2, MatchesWhatTheTargetSees) {
  // Same kernel, same CPU: the target's AT_HWCAP2 equals ours.
  auto launched = launch_with_pipes({REGION_TARGET});
  ASSERT_TRUE(launched.tracee);
  auto hwcap2 = read_hwcap2(launched.tracee->pid());
  ASSERT_TRUE(hwcap2) << hwcap2.error().text();
  EXPECT_EQ(*hwcap2, ::getauxval(AT_HWCAP2));
}

} // namespace
} // namespace dprobe::process
