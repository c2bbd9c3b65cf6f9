// abi::walk_stack over this process's own stack, with the tables ProcessUnwindTables builds from
// /proc/self/maps: the frames name the call chain, with and without frame pointers.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "abi/unwind.h"
#include "elf/symbolizer.h"
#include "process/maps.h"
#include "stacks/unwind_tables.h"

namespace dprobe::stacks {
namespace {

struct Captured;
/// Runs while the captured frames are still live (inside the innermost function).
using OnCapture = void (*)(Captured&);

struct Captured {
  abi::StackStart start{};
  OnCapture on_capture = nullptr;
  uint32_t max_frames = abi::kMaxStackFrames;
  bool tables = true;
  std::vector<std::string> names;
};

// The chain under test: outer -> middle -> inner, which records its own registers. Built once
// keeping frame pointers and once without (GCC's optimize attribute), and never inlined.
#define DPROBE_CAPTURE(out)                                                                        \
  __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"                           \
                   : "=r"((out).start.rip), "=r"((out).start.rsp), "=r"((out).start.rbp))

extern "C" {
__attribute__((noinline, optimize("omit-frame-pointer"))) void nofp_inner(Captured* out) {
  DPROBE_CAPTURE(*out);
  out->on_capture(*out);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("omit-frame-pointer"))) void nofp_middle(Captured* out) {
  nofp_inner(out);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("omit-frame-pointer"))) void nofp_outer(Captured* out) {
  nofp_middle(out);
  __asm__ volatile("" ::: "memory");
}
// A signal handler's stack: the walk must cross the kernel's signal frame into the interrupted
// code, which keeps no frame pointer.
Captured* g_signal_capture = nullptr;
__attribute__((noinline)) void capture_in_handler(int) {
  DPROBE_CAPTURE(*g_signal_capture);
  g_signal_capture->on_capture(*g_signal_capture);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("omit-frame-pointer"))) void nofp_signalled(Captured* out) {
  g_signal_capture = out;
  ::raise(SIGUSR1);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("omit-frame-pointer"))) void nofp_signal_outer(Captured* out) {
  nofp_signalled(out);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void fp_inner(Captured* out) {
  DPROBE_CAPTURE(*out);
  out->on_capture(*out);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void fp_middle(Captured* out) {
  fp_inner(out);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void fp_outer(Captured* out) {
  fp_middle(out);
  __asm__ volatile("" ::: "memory");
}
}

std::vector<elf::MappedFile> mapped_files(const std::vector<process::Mapping>& maps) {
  std::vector<elf::MappedFile> files;
  for (const auto& m : maps) {
    if (!m.path.empty() && m.path[0] == '/') {
      files.push_back(elf::MappedFile{m.start, m.end, m.offset, m.path, m.executable, m.inode});
    }
  }
  return files;
}

void walk_and_name(Captured& captured) {
  auto maps = process::read_maps(::getpid());
  ASSERT_TRUE(maps.has_value());
  ProcessUnwindTables tables;
  (void)tables.update(*maps);
  const abi::UnwindView none{nullptr, 0, nullptr, 0};
  uint64_t frames[abi::kMaxStackFrames];
  const uint32_t depth = abi::walk_stack(
      captured.tables ? tables.view() : none, captured.start,
      [](uint64_t address, uint64_t* word) {
        std::memcpy(word, reinterpret_cast<const void*>(address), 8);
        return true;
      },
      frames, captured.max_frames);
  elf::ProcessSymbolizer names(mapped_files(*maps));
  for (uint32_t i = 0; i < depth; ++i) captured.names.push_back(names.usym(frames[i]));
}

std::vector<std::string> walk(void (*outer)(Captured*), uint32_t max_frames = 127,
                              bool tables = true) {
  Captured captured;
  captured.on_capture = &walk_and_name;
  captured.max_frames = max_frames;
  captured.tables = tables;
  outer(&captured);
  return captured.names;
}

TEST(StackWalk, FollowsCallFrameInformationWithoutFramePointers) {
  const std::vector<std::string> names = walk(&nofp_outer);
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names[0], "nofp_inner");
  EXPECT_EQ(names[1], "nofp_middle");
  EXPECT_EQ(names[2], "nofp_outer");
  // Up through GoogleTest and main to the process's first frame, which ends the walk.
  EXPECT_NE(std::find(names.begin(), names.end(), "main"), names.end());
  EXPECT_EQ(names.back(), "_start");
}

TEST(StackWalk, FollowsFramePointerCode) {
  const std::vector<std::string> names = walk(&fp_outer);
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names[0], "fp_inner");
  EXPECT_EQ(names[1], "fp_middle");
  EXPECT_EQ(names[2], "fp_outer");
  EXPECT_EQ(names.back(), "_start");
}

TEST(StackWalk, CrossesASignalFrame) {
  struct sigaction action{}, old{};
  action.sa_handler = &capture_in_handler;
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &old), 0);
  std::vector<std::string> names;
  {
    Captured captured;
    captured.on_capture = &walk_and_name;
    nofp_signal_outer(&captured);
    names = captured.names;
  }
  ::sigaction(SIGUSR1, &old, nullptr);
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], "capture_in_handler");
  const auto signalled = std::find(names.begin(), names.end(), "nofp_signalled");
  ASSERT_NE(signalled, names.end()) << ::testing::PrintToString(names);
  ASSERT_NE(signalled + 1, names.end());
  EXPECT_EQ(signalled[1], "nofp_signal_outer");
  EXPECT_EQ(names.back(), "_start") << ::testing::PrintToString(names);
}

TEST(StackWalk, KeepsAtMostTheFramesAskedFor) {
  EXPECT_EQ(walk(&nofp_outer, 2), (std::vector<std::string>{"nofp_inner", "nofp_middle"}));
}

TEST(StackWalk, StopsAtTheFirstUnreadableWord) {
  Captured captured;
  captured.on_capture = [](Captured& c) {
    ProcessUnwindTables tables;
    (void)tables.update(*process::read_maps(::getpid()));
    uint64_t frames[abi::kMaxStackFrames];
    const uint32_t depth = abi::walk_stack(
        tables.view(), c.start, [](uint64_t, uint64_t*) { return false; }, frames, 127);
    c.names.assign(depth, "frame");
  };
  nofp_outer(&captured);
  EXPECT_EQ(captured.names.size(), 1u); // the probed instruction needs no read
}

TEST(StackWalk, WithoutTablesFollowsTheFramePointerChain) {
  // From inside fp_inner, after its prologue: the chain names every caller.
  const std::vector<std::string> names = walk(&fp_outer, 3, false);
  EXPECT_EQ(names, (std::vector<std::string>{"fp_inner", "fp_middle", "fp_outer"}));
}

TEST(StackId, DependsOnProcessDepthAndEveryFrame) {
  const uint64_t frames[] = {0x1000, 0x2000, 0x3000};
  const uint64_t id = abi::stack_id(7, frames, 3);
  EXPECT_NE(id, 0u);
  EXPECT_EQ(id, abi::stack_id(7, frames, 3));
  EXPECT_NE(id, abi::stack_id(8, frames, 3));
  EXPECT_NE(id, abi::stack_id(7, frames, 2));
  const uint64_t other[] = {0x1000, 0x2001, 0x3000};
  EXPECT_NE(id, abi::stack_id(7, other, 3));
}

} // namespace
} // namespace dprobe::stacks
