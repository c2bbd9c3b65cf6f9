// How printers name the stack ids that ustack fields hold (bytecode/packed.h): the runtime
// resolves an id to its process and frames and symbolizes them (runtime/stack_store.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bytecode/packed.h"

namespace dprobe::output {

class StackFormatter {
 public:
  virtual ~StackFormatter() = default;
  /// Stack `id` as bpftrace prints a ustack (kind UStack) or ustack(perf) (UStackPerf) value:
  /// "\n" then one line per frame; bpftrace frames are indented by `indent` spaces (8 where a
  /// value is printed, 4 inside a map key's brackets).
  [[nodiscard]] virtual std::string stack_text(uint64_t id, bytecode::FieldKind kind,
                                               size_t indent) = 0;
};

/// `stacks`' text for stack `id`, or the empty stack ("\n") when there is no formatter.
[[nodiscard]] inline std::string stack_text_or_empty(StackFormatter* stacks, uint64_t id,
                                                     bytecode::FieldKind kind, size_t indent) {
  return stacks != nullptr ? stacks->stack_text(id, kind, indent) : std::string("\n");
}

} // namespace dprobe::output
