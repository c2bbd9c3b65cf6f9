// bpftrace's printf, reproduced byte for byte.
//
// bpftrace 0.17 finds conversions with the regex %-?[0-9]*(\.[0-9]+)?(TOKEN), TOKEN being one of
// c s r and {"",hh,h,l,ll,j,z,t} x {d,u,x,X,o,p}. It splits the format into segments, each "text
// before + one conversion", and runs each segment through snprintf with one argument, printing
// the result as a C string; the text after the last conversion is printed as is. Consequences
// kept here on purpose:
//   - "%%" becomes "%" before a conversion but stays "%%" after the last one ("100%%" prints
//     "100%%", "%%d" is "%" then the conversion "%d");
//   - a %c of 0 prints nothing (the NUL ends the C string);
//   - integer conversions read the argument as their C type: "%d" of -1ull prints -1, "%u"
//     prints 4294967295, "%hhd" of 300 prints 44.
// dprobe also accepts what bpftrace rejects (scripts bpftrace accepts behave the same): the
// flags '+', ' ', '#' and '0' in any order and the conversion 'i'.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/packed.h"
#include "output/stack_formatter.h"

namespace dprobe::output {

enum class ArgumentClass { Integer, String, Buffer };

struct Conversion {
  std::string flags;     ///< any of "-+ #0", as written
  int width = -1;        ///< -1 when absent
  int precision = -1;    ///< -1 when absent
  std::string length;    ///< "", "hh", "h", "l", "ll", "j", "z" or "t"
  char conversion = 'd'; ///< one of d i u o x X p c s r
  std::string text;      ///< the whole conversion as written, e.g. "%-10ld"

  /// The conversion without flags, width and precision, as bpftrace names it in messages: "ld".
  [[nodiscard]] std::string token() const { return length + conversion; }
  [[nodiscard]] ArgumentClass argument_class() const;
};

struct FormatSegment {
  std::string prefix; ///< text before the conversion, still in printf syntax ("%%" pairs)
  Conversion conversion;
};

struct ParsedFormat {
  std::vector<FormatSegment> segments; ///< one per argument
  std::string trailing;                ///< text after the last conversion, printed verbatim
};

/// Splits a format string (escapes already processed) into segments. Never fails: anything
/// that is not a conversion is text.
[[nodiscard]] ParsedFormat parse_printf_format(std::string_view format);

/// Formats packed arguments (see bytecode/packed.h). `kinds` gives each argument's field kind;
/// missing or mismatched arguments print as 0 / "" rather than reading out of bounds. Stack
/// fields print with %s as `stacks` names them ("\n" without it).
[[nodiscard]] std::string format_printf(const ParsedFormat& format,
                                        std::span<const bytecode::FieldKind> kinds,
                                        std::span<const uint8_t> args,
                                        StackFormatter* stacks = nullptr);

/// A format prepared for formatting many events: prefixes rendered once and the common
/// conversions (%d %i %u %x %X with no flags, width or precision, plain or with a 64-bit length,
/// and plain %s) done without snprintf. Output is byte-identical to format_printf.
class CompiledFormat {
 public:
  /// Keeps references to `format` and `kinds`: both must outlive this object.
  CompiledFormat(const ParsedFormat& format, std::span<const bytecode::FieldKind> kinds);

  /// Appends what format_printf(format, kinds, args) returns to `out`.
  void append(std::string& out, std::span<const uint8_t> args) const;

  /// Every conversion has a fast form: write() may be used for complete arguments.
  [[nodiscard]] bool fast() const { return fast_; }
  /// Bytes of packed arguments write() needs.
  [[nodiscard]] uint32_t args_size() const { return args_size_; }
  /// The most bytes write() produces.
  [[nodiscard]] size_t max_length() const { return max_length_; }
  /// Only when fast() and args.size() >= args_size(): writes the text append() would append at
  /// `dst`, which has room for max_length() bytes, and returns the end of what it wrote.
  char* write(char* dst, std::span<const uint8_t> args) const;

 private:
  enum class Op : uint8_t { Generic, Int32, UInt32, Int64, UInt64, Hex32, Hex64, HexUpper32,
                            HexUpper64, String };
  struct Step {
    Op op = Op::Generic;
    uint32_t offset = 0; ///< of the argument in the packed bytes
    uint32_t size = 0;   ///< of the argument
    std::string prefix;  ///< rendered (fast ops only)
  };
  /// The most bytes one fast conversion writes (a string field's 63 characters).
  static constexpr size_t kMaxValueLength = 64;
  /// The value of a fast step (no prefix) at dst; `args` are complete.
  static char* write_value(char* dst, const Step& step, const uint8_t* args);

  const ParsedFormat* format_;
  std::span<const bytecode::FieldKind> kinds_;
  std::vector<Step> steps_;
  uint32_t args_size_ = 0; ///< bytes every fast step needs present
  bool fast_ = true;
  size_t max_length_ = 0;
};

} // namespace dprobe::output
