// StackStore: stacks added by id print as bpftrace prints ustack, named from the process's
// mappings (this process's here).
#include <unistd.h>

#include <gtest/gtest.h>

#include "abi/unwind.h"
#include "stacks/stack_store.h"

namespace dprobe::stacks {
namespace {

extern "C" __attribute__((noinline)) void store_named_function() {
  __asm__ volatile("" ::: "memory");
}

TEST(StackStore, PrintsFramesAsBpftraceDoes) {
  StackStore store;
  const auto pid = static_cast<uint32_t>(::getpid());
  const uint64_t frames[] = {reinterpret_cast<uint64_t>(&store_named_function),
                             reinterpret_cast<uint64_t>(&store_named_function)};
  const uint64_t id = abi::stack_id(pid, frames, 2);
  store.add(id, pid, frames);
  EXPECT_EQ(store.stack_text(id, bytecode::FieldKind::UStack, 8),
            "\n        store_named_function+0\n        store_named_function+0\n");
  EXPECT_EQ(store.stack_text(id, bytecode::FieldKind::UStack, 4),
            "\n    store_named_function+0\n    store_named_function+0\n");
  const std::string perf = store.stack_text(id, bytecode::FieldKind::UStackPerf, 0);
  EXPECT_EQ(perf.rfind(fmt::format("\n\t{:x} store_named_function+0 (/", frames[0]), 0), 0u)
      << perf;
}

TEST(StackStore, UnknownAndEmptyStacks) {
  StackStore store;
  EXPECT_EQ(store.stack_text(0, bytecode::FieldKind::UStack, 8), "\n");
  EXPECT_EQ(store.stack_text(12345, bytecode::FieldKind::UStack, 4), "\n    [unknown]\n");
}

TEST(StackStore, AbsorbTakesTheOtherStoresStacks) {
  StackStore a, b;
  const auto pid = static_cast<uint32_t>(::getpid());
  const uint64_t frames[] = {reinterpret_cast<uint64_t>(&store_named_function)};
  const uint64_t id = abi::stack_id(pid, frames, 1);
  b.add(id, pid, frames);
  a.absorb(b);
  EXPECT_TRUE(a.contains(id));
  EXPECT_FALSE(b.contains(id));
  EXPECT_EQ(a.stack_text(id, bytecode::FieldKind::UStack, 8), "\n        store_named_function+0\n");
}

} // namespace
} // namespace dprobe::stacks
