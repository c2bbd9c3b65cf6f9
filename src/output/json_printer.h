// bpftrace 0.17's `-f json` output, one JSON object per line:
//   {"type": "attached_probes", "data": {"probes": 2}}
//   {"type": "printf", "data": "hi 5\n"}            also "time" (time()) and "syscall" (system())
//   {"type": "value", "data": 5}                    print(value); strings and buffers quoted
//   {"type": "map", "data": {"@a": 1}}              count, sum, min, max, integers, strings
//   {"type": "map", "data": {"@b": {"1,x": 1, "2,y": 2}}}
//   {"type": "stats", "data": {"@a": 3}}            avg: the average alone
//   {"type": "stats", "data": {"@s": {"count": 2, "average": 6, "total": 13}}}
//   {"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 4, "max": 7, "count": 1}]}}
// Map entries come in the order the text printer uses; tuple keys are joined by "," (no space);
// a map that holds nothing prints nothing (a keyless count map always holds its 0). hist and
// lhist show the buckets the text output shows (leading and trailing empty ones trimmed); an
// lhist's bucket below min is {"max": min - 1, ...}, its bucket from max on {"min": max, ...}.
// Value kinds plug in through json_value() (one function each).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/module.h"
#include "output/map_printer.h"

namespace dprobe::output {

/// `text` as the inside of a JSON string, escaped as bpftrace escapes it: \" \\ \n \r \t, other
/// bytes below 0x20 as \u00XX, everything else (UTF-8 included) as is.
[[nodiscard]] std::string json_escape(std::string_view text);

/// The "Attaching N probes..." line of -f json (with its newline).
[[nodiscard]] std::string json_attached_probes(size_t probes);

/// An event with text data as a JSON line (with its newline): type "printf", "time", "syscall".
[[nodiscard]] std::string json_event(std::string_view type, std::string_view text);

/// One printf event's text as a JSON line (with its newline).
[[nodiscard]] std::string json_printf(std::string_view text);

/// print(value): `text` is the value as the text output shows it (without the newline), quoted
/// and escaped when `quoted` (strings, buffers), as is otherwise (integers, strftime dates).
[[nodiscard]] std::string json_print_value(std::string_view text, bool quoted);

/// One entry's value as JSON, per the map's value kind.
/// `hist_div`: a hist's counts shown divided (print(@h, top, div)).
[[nodiscard]] std::string json_value(const bytecode::MapSchema& schema, const MapEntry& entry,
                                     StackFormatter* stacks = nullptr, uint32_t hist_div = 0);

/// One map as a JSON line (with its newline); "" for a map that holds nothing (a keyless count
/// map always holds a value, as in the text output).
[[nodiscard]] std::string format_map_json(const bytecode::MapSchema& schema,
                                          std::vector<MapEntry> entries,
                                          StackFormatter* stacks = nullptr,
                                          bytecode::PrintLimits limits = {});

/// A string-valued map as a JSON line, values quoted, sorted by key; "" when it holds nothing.
[[nodiscard]] std::string
format_string_map_json(const bytecode::MapSchema& schema,
                       std::vector<std::pair<std::string, std::string>> entries,
                       StackFormatter* stacks = nullptr);

} // namespace dprobe::output
