// bpftrace 0.17's `-f json` output, one JSON object per line:
//   {"type": "attached_probes", "data": {"probes": 2}}
//   {"type": "printf", "data": "hi 5\n"}
//   {"type": "map", "data": {"@a": 1}}
//   {"type": "map", "data": {"@b": {"1,x": 1, "2,y": 2}}}
// Map entries come in the order the text printer uses; tuple keys are joined by "," (no space);
// an empty map prints nothing. Value kinds plug in through json_value() (one function each).
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

/// One printf event's text as a JSON line (with its newline).
[[nodiscard]] std::string json_printf(std::string_view text);

/// One entry's value as JSON, per the map's value kind.
[[nodiscard]] std::string json_value(const bytecode::MapSchema& schema, const MapEntry& entry);

/// One map as a JSON line (with its newline); "" for a map that holds nothing (a keyless count
/// map always holds a value, as in the text output).
[[nodiscard]] std::string format_map_json(const bytecode::MapSchema& schema,
                                          std::vector<MapEntry> entries);

} // namespace dprobe::output
