// libFuzzer target: the script front end (lexer, parser, semantic checks, codegen) on arbitrary
// bytes. It must never crash, hang or trip a sanitizer, whatever the script; every error it
// reports must format into a diagnostic that names a place in the script.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "lang/diagnostics.h"
#include "lang/parser.h"
#include "lang/passes/codegen.h"
#include "lang/passes/semantic_analyser.h"

namespace {

using dprobe::lang::Diagnostics;

// Each diagnostic is three lines at least: "stdin:L:C: error: ...", the line, the caret.
void check_diagnostics(std::string_view source, const Diagnostics& diagnostics) {
  if (diagnostics.empty()) return;
  const std::string text = diagnostics.format(source, "stdin");
  if (text.rfind("stdin:", 0) != 0) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  // The pipeline of lang::compile(), stage by stage, without the bytecode verifier (its
  // Result<void> needs a newer clang than Debian 12's for libstdc++'s std::expected).
  Diagnostics diagnostics;
  dprobe::lang::ast::Program program = dprobe::lang::parse(source, diagnostics);
  if (!diagnostics.empty()) {
    check_diagnostics(source, diagnostics);
    return 0;
  }
  const dprobe::lang::SemanticResult semantic = dprobe::lang::analyse(program, diagnostics);
  if (!diagnostics.empty()) {
    check_diagnostics(source, diagnostics);
    return 0;
  }
  std::vector<std::vector<uint32_t>> point_programs;
  const dprobe::bytecode::Module module =
      dprobe::lang::generate(program, semantic, diagnostics, point_programs);
  check_diagnostics(source, diagnostics);
  // One program per probe block, or one per attach point where `probe`/`func` differ.
  if (diagnostics.empty() && (point_programs.size() != program.probes.size() ||
                              module.programs.size() < program.probes.size())) {
    std::abort();
  }
  for (size_t i = 0; diagnostics.empty() && i < point_programs.size(); ++i) {
    for (uint32_t index : point_programs[i]) {
      if (index >= module.programs.size()) std::abort();
    }
  }
  return 0;
}
