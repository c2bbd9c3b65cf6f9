#include "program_dump.h"

#include <fmt/format.h>

#include "bytecode/disassembler.h"

namespace dprobe::cli {

namespace {

const char* kind_name(const lang::AttachPoint& ap) {
  switch (ap.kind) {
  case lang::ProbeKind::Uprobe:
    return ap.is_return ? "uretprobe" : "uprobe";
  case lang::ProbeKind::Begin:
    return "BEGIN";
  case lang::ProbeKind::End:
    return "END";
  case lang::ProbeKind::Interval:
    return "interval";
  }
  return "?";
}

std::string describe(const lang::AttachPoint& ap) {
  switch (ap.kind) {
  case lang::ProbeKind::Uprobe:
    if (ap.address) return fmt::format("path {} address {:#x}", ap.path, *ap.address);
    return fmt::format("path {} symbol {} offset {}", ap.path, ap.symbol, ap.offset);
  case lang::ProbeKind::Interval:
    return fmt::format("every {} ns", ap.interval_ns);
  case lang::ProbeKind::Begin:
  case lang::ProbeKind::End:
    break;
  }
  return "";
}

std::string field_list(const std::vector<bytecode::FieldKind>& fields) {
  std::string out;
  for (bytecode::FieldKind kind : fields) {
    if (!out.empty()) out += ", ";
    out += kind == bytecode::FieldKind::Int ? "int" : "string";
  }
  return out;
}

std::string value_name(const bytecode::MapSchema& map) {
  switch (map.value) {
  case bytecode::MapValueKind::Count:
    return "count";
  case bytecode::MapValueKind::Int:
    return map.value_signed ? "int64" : "uint64";
  case bytecode::MapValueKind::Sum:
    return "sum";
  case bytecode::MapValueKind::Min:
    return "min";
  case bytecode::MapValueKind::Max:
    return "max";
  case bytecode::MapValueKind::Avg:
    return "avg";
  case bytecode::MapValueKind::Stats:
    return "stats";
  case bytecode::MapValueKind::Hist:
    return "hist";
  case bytecode::MapValueKind::Lhist:
    return "lhist";
  case bytecode::MapValueKind::String:
    return "string";
  case bytecode::MapValueKind::kCount:
    break;
  }
  return "?";
}

/// A string as a C literal, so control characters show.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

} // namespace

std::string dump_program(const lang::CompiledScript& script) {
  const bytecode::Module& module = script.module;
  std::string out;
  out += fmt::format("probes ({}):\n", script.probes.size());
  for (const lang::ProbeBlock& block : script.probes) {
    out += fmt::format("  program {}:\n", block.program_index);
    for (const lang::AttachPoint& ap : block.attach_points) {
      const std::string detail = describe(ap);
      out += fmt::format("    {} {}{}{}\n", kind_name(ap), ap.raw, detail.empty() ? "" : ": ",
                         detail);
    }
  }
  out += fmt::format("maps ({}):\n", module.maps.size());
  for (size_t i = 0; i < module.maps.size(); ++i) {
    const bytecode::MapSchema& map = module.maps[i];
    out += fmt::format("  {}: {} key ({}) value {} max_entries {}\n", i, map.name,
                       field_list(map.key), value_name(map), map.max_entries);
  }
  out += fmt::format("formats ({}):\n", module.formats.size());
  for (size_t i = 0; i < module.formats.size(); ++i) {
    out += fmt::format("  {}: {} args ({})\n", i, quoted(module.formats[i].format),
                       field_list(module.formats[i].args));
  }
  out += fmt::format("strings ({}):\n", module.strings.size());
  for (size_t i = 0; i < module.strings.size(); ++i) {
    out += fmt::format("  {}: {}\n", i, quoted(module.strings[i]));
  }
  for (size_t i = 0; i < module.programs.size(); ++i) {
    out += fmt::format("program {}: {}", i, bytecode::disassemble(module.programs[i], &module));
  }
  return out;
}

} // namespace dprobe::cli
