// dprobe: options, wiring, nothing else.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "command_line.h"
#include "program_dump.h"
#include "lang/compiler.h"
#include "output/json_printer.h"
#include "probes/interval_timers.h"
#include "probes/probe_list.h"
#include "probes/machine_wide.h"
#include "probes/probe_session.h"
#include "probes/site_resolver.h"
#include "runtime/probe_runtime.h"

namespace {

// Written by the SIGINT/SIGTERM handler, read by the event loop: the one piece of state a
// signal handler can reach is necessarily process-wide.
std::atomic<bool> g_stop_requested{false};

void on_stop_signal(int) { g_stop_requested.store(true, std::memory_order_relaxed); }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int error_exit(std::string_view message) {
  fmt::print(stderr, "dprobe: error: {}\n", message);
  return 1;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

std::string current_directory() {
  char buf[PATH_MAX];
  return ::getcwd(buf, sizeof buf) != nullptr ? buf : ".";
}

/// Writes `text` to FILE, or stdout when FILE is empty; the exit status.
int write_output(const std::string& file, std::string_view text) {
  std::FILE* out = stdout;
  if (!file.empty()) {
    out = std::fopen(file.c_str(), "w");
    if (out == nullptr) return error_exit(fmt::format("{}: {}", file, std::strerror(errno)));
  }
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
  if (out != stdout) std::fclose(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dprobe: dynamic probes for running programs, bpftrace's language, no kernel support",
               "dprobe"};
  std::string program_text, script_file, command, output_file;
  pid_t pid = 0;
  bool verbose = false;
  app.add_option("-e", program_text, "program text, e.g. 'uprobe:/bin/app:parse { @c = count(); }'");
  app.add_option("file", script_file, "script file (instead of -e)");
  app.add_option("-p", pid, "attach to the running process PID")->check(CLI::PositiveNumber);
  app.add_option("-c", command, "run CMD and probe it from its first instruction");
  app.add_option("-o", output_file, "write output to FILE instead of stdout");
  app.add_flag("-v", verbose, "print each probe's address, instruction and mechanism");
  bool unsafe = false;
  app.add_flag("--unsafe", unsafe, "allow unsafe builtins: system() runs commands from dprobe");
  std::string mechanism;
  app.add_option("--mechanism", mechanism,
                 "use this mechanism for every probe or refuse it: jump, int3-boost, int3-ptrace "
                 "(default: the fastest that is safe at each site)")
      ->check(CLI::IsMember({"jump", "int3-boost", "int3-ptrace"}));
  std::string list_pattern, output_format = "text";
  bool dump = false;
  app.add_option("-l", list_pattern,
                 "list the probes PATTERN matches and exit, e.g. 'uprobe:/bin/app:parse_*', "
                 "'uprobe:libc:mall*'")
      ->type_name("PATTERN");
  app.add_option("-f", output_format, "output format: text (default) or json, as bpftrace's")
      ->type_name("FORMAT");
  app.add_flag("-d,--dump", dump,
               "print the compiled program (probes, maps, formats, bytecode) and exit without "
               "running anything");
  app.set_version_flag("-V,--version", fmt::format("dprobe v{}", DPROBE_VERSION));
  app.footer(
      "examples:\n"
      "  dprobe -e 'uprobe:./app:work { @calls = count(); }' -c './app 1000'\n"
      "  dprobe -e 'uprobe:/usr/bin/app:parse /arg0 > 10/ { printf(\"%d\\n\", arg0); }' -p 4242\n"
      "  dprobe script.bt -p 4242");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return error_exit(e.what());
  }

  if (output_format != "text" && output_format != "json") {
    return error_exit(
        fmt::format("invalid output format '{}' (valid formats: text, json)", output_format));
  }
  if (!list_pattern.empty()) {
    if (!program_text.empty() || !script_file.empty()) {
      return error_exit("-l lists probes and runs no program: give -l PATTERN without -e or FILE");
    }
    if (pid != 0 || !command.empty()) {
      return error_exit("-l lists probes in files, not processes: give -l without -p or -c");
    }
    if (dump) return error_exit("-l and -d cannot be used together");
    auto lines = dprobe::probes::list_probes(list_pattern, current_directory());
    if (!lines) return error_exit(lines.error().text());
    std::string text;
    for (const std::string& line : *lines) text += line + "\n";
    return write_output(output_file, text);
  }
  if (program_text.empty() == script_file.empty()) {
    return error_exit("give exactly one program: -e PROGRAM or a script FILE (see --help)");
  }
  if (pid != 0 && !command.empty()) return error_exit("-p and -c cannot be used together");

  std::string source = program_text, filename = "stdin";
  if (!script_file.empty()) {
    if (!read_file(script_file, source)) {
      return error_exit(fmt::format("{}: {}", script_file, std::strerror(errno)));
    }
    filename = script_file;
  }

  // Everything the user wrote is checked before any process is touched.
  // A wildcard in a block that reads `probe`/`func` becomes one attach point per match, each
  // with its own name (a pattern that matches nothing is left for the session to report).
  dprobe::probes::SiteResolver names(current_directory());
  if (pid != 0) names.set_process(pid);
  dprobe::lang::CompileOptions compile_options{unsafe, !command.empty()};
  compile_options.expand_wildcard = [&](const dprobe::lang::AttachPoint& ap) {
    auto expanded = names.expand(ap);
    return expanded ? std::move(*expanded) : std::vector<dprobe::lang::AttachPoint>{};
  };
  auto script = dprobe::lang::compile(source, filename, compile_options);
  if (!script) {
    fmt::print(stderr, "{}\n", script.error().message);
    return 1;
  }

  if (dump) {
    // A dry run, as bpftrace's -d: nothing is attached and no command is started.
    return write_output(output_file, dprobe::cli::dump_program(*script));
  }

  dprobe::probes::SessionOptions options;
  options.pid = pid;
  options.verbose = verbose;
  if (!mechanism.empty()) options.mechanism = dprobe::probes::parse_mechanism(mechanism);
  options.working_directory = current_directory();
  if (!command.empty()) {
    auto words = dprobe::cli::split_command(command);
    if (!words) return error_exit(words.error().text());
    options.command = std::move(*words);
  }
  const auto format = output_format == "json" ? dprobe::runtime::OutputFormat::Json
                                              : dprobe::runtime::OutputFormat::Text;
  bool has_uprobes = false;
  for (const auto& block : script->probes) {
    for (const auto& ap : block.attach_points) {
      has_uprobes |= ap.kind == dprobe::lang::ProbeKind::Uprobe;
    }
  }

  std::FILE* out = stdout;
  if (!output_file.empty()) {
    out = std::fopen(output_file.c_str(), "w");
    if (out == nullptr) return error_exit(fmt::format("{}: {}", output_file, std::strerror(errno)));
  }
  install_stop_handlers();

  dprobe::runtime::ProbeRuntime runtime(*script, out, format);
  options.on_armed = [&](size_t attach_points) {
    if (format == dprobe::runtime::OutputFormat::Json) {
      fmt::print(out, "{}", dprobe::output::json_attached_probes(attach_points));
    } else {
      fmt::print(out, "Attaching {} probe{}...\n", attach_points, attach_points == 1 ? "" : "s");
    }
    std::fflush(out);
  };

  // A command or process is run under a session even without uprobes: interval probes and
  // END then run while it lives, as in bpftrace.
  if (pid != 0 || !options.command.empty()) {
    auto end = dprobe::probes::run_session(*script, runtime, options, g_stop_requested);
    if (!end) return error_exit(end.error().text());
  } else if (has_uprobes) {
    // Every process that maps the probed files, now or later.
    auto end = dprobe::probes::run_machine_wide(*script, runtime, options, g_stop_requested);
    if (!end) return error_exit(end.error().text());
  } else {
    options.on_armed(dprobe::probes::count_attach_points(*script));
    dprobe::probes::run_special_probes(*script, runtime, dprobe::lang::ProbeKind::Begin);
    // Like bpftrace, a script without uprobes runs until exit() or a signal; interval probes
    // run meanwhile.
    dprobe::probes::IntervalTimers timers(*script, dprobe::probes::monotonic_ns());
    while (!runtime.exit_requested() && !g_stop_requested.load()) {
      dprobe::probes::run_due_intervals(timers, runtime);
      if (runtime.exit_requested()) break;
      // Returns early (EINTR) when SIGINT/SIGTERM arrives; the timeout also bounds the wait of
      // a signal that came just before the call (pause() would sleep through it for good).
      ::poll(nullptr, 0, timers.wait_ms(dprobe::probes::monotonic_ns(), 1000));
    }
  }
  dprobe::probes::run_special_probes(*script, runtime, dprobe::lang::ProbeKind::End);
  runtime.print_maps();
  std::fflush(out);
  if (out != stdout) std::fclose(out);
  return 0;
}
