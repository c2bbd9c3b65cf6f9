// A compiled script as the controller holds it: programs plus the tables they index (maps,
// printf formats, constant strings). Controller-side only (uses the std library); the VM sees
// it through the plain views of vm.h, built by VmModuleTables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bytecode/aggregate.h" // MapValueKind
#include "bytecode/isa.h"
#include "bytecode/packed.h"
#include "bytecode/vm.h"

namespace dprobe::bytecode {

struct MapSchema {
  std::string name;           ///< as written, with the '@' ("@", "@calls")
  std::vector<FieldKind> key; ///< empty for a map without keys
  MapValueKind value = MapValueKind::Int;
  bool value_signed = true;    ///< print and sort values as int64 (else uint64)
  uint32_t max_entries = 4096; ///< bpftrace's default map size; updates past it are dropped
  /// lhist(x, min, max, step) parameters (Lhist maps only).
  int64_t lhist_min = 0;
  int64_t lhist_max = 0;
  int64_t lhist_step = 0;
  /// An Int map whose values are stacks (`@s = ustack`): UStack or UStackPerf; Int otherwise.
  FieldKind value_field = FieldKind::Int;

  [[nodiscard]] uint32_t key_size() const;
  [[nodiscard]] bool is_scalar() const { return key.empty(); }
  /// 64-bit words of one value (bytecode/aggregate.h); 0 for a bad kind or lhist parameters.
  [[nodiscard]] uint32_t value_words() const {
    return bytecode::value_words(value, lhist_min, lhist_max, lhist_step);
  }
};

/// What the controller does with an event of a format (the agent only carries the bytes).
enum class EventKind : uint8_t {
  Printf,    ///< print the formatted text (printf)
  Value,     ///< print(value): the text as Printf; -f json shows it as a "value" event
  Time,      ///< time(FORMAT): print the wall-clock time through strftime(FORMAT)
  System,    ///< system(...): run the formatted text with /bin/sh (only with --unsafe)
  MapSet,    ///< string map `map`: args are the packed key, then the String value
  MapDelete, ///< string map `map`: args are the packed key
};

struct PrintfFormat {
  std::string format;          ///< the format string after escape processing
  std::vector<FieldKind> args; ///< kinds of the packed arguments, in order
  EventKind kind = EventKind::Printf;
  uint32_t map = 0; ///< MapSet and MapDelete: the map id
  /// Per argument: for an Int that is strftime(FMT, ns), FMT (printed as its %s string);
  /// empty for every other argument. Either empty or as long as args.
  std::vector<std::string> strftime_formats{};

  [[nodiscard]] uint32_t args_size() const;
};

struct Program {
  std::string name; ///< for listings, e.g. "uprobe:./loop:work"
  std::vector<Insn> code;
  uint32_t frame_size = 0;
};

/// print(@m, top, div): the `top` entries with the largest values (0: all), values divided by
/// `div` (0: as they are).
struct PrintLimits {
  uint32_t top = 0;
  uint32_t div = 0;
};

struct Module {
  std::vector<Program> programs;
  std::vector<PrintLimits> print_limits; ///< a Print's imm - 1 indexes this
  std::vector<MapSchema> maps;
  std::vector<PrintfFormat> formats;
  std::vector<std::string> strings;
};

/// Bytes of a packed record of the given fields.
[[nodiscard]] uint32_t packed_size(const std::vector<FieldKind>& fields);

/// The plain tables vm_run needs, built from (and pointing into) a Module that must outlive it.
class VmModuleTables {
 public:
  explicit VmModuleTables(const Module& module);
  VmModuleTables(const VmModuleTables&) = delete;
  VmModuleTables& operator=(const VmModuleTables&) = delete;

  [[nodiscard]] const VmModule& view() const { return view_; }
  [[nodiscard]] VmProgram program(uint32_t index) const;

 private:
  const Module& module_;
  std::vector<VmMapInfo> maps_;
  std::vector<VmFormatInfo> formats_;
  std::vector<VmString> strings_;
  VmModule view_{};
};

} // namespace dprobe::bytecode
