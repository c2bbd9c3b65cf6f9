// spec -> sites: resolves a script's uprobe attach points to instructions in one process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"
#include "lang/compiler.h"
#include "probes/probe_site.h"
#include "process/maps.h"

namespace dprobe::probes {

/// Reads target memory; the resolver compares the code a process runs with the file.
using TargetReader = std::function<Status(uint64_t address, std::span<uint8_t> out)>;

/// A file-level resolution of an attach point: independent of any process.
struct FileLocation {
  std::string file_path;  ///< absolute
  std::string function;
  uint64_t function_offset = 0;
  uint64_t function_size = 0;
  std::vector<uint8_t> function_code;  ///< the function's bytes in the file (empty: unknown)
  uint64_t file_vaddr = 0;
  x86_64::Instruction instruction;  ///< decoded from the file, at file_vaddr
};

/// One uprobe attach point (wildcards expanded) as located in its file, for probes armed later:
/// deferred insertion (the file is not mapped yet) and re-arming after dlclose + dlopen.
struct UprobePoint {
  lang::AttachPoint ap;
  uint32_t program = 0;
  std::string file_path;   ///< absolute, as the resolver opened it
  uint64_t file_vaddr = 0; ///< the probed instruction's link-time address
  bool mapped = false;     ///< the file was mapped in the process when resolve() ran
};

class SiteResolver {
 public:
  explicit SiteResolver(std::string working_directory);

  /// The process probes are resolved for: library names are looked up in its maps first.
  void set_process(pid_t pid) { pid_ = pid; }

  /// Resolves symbol/offset/address in the file, and checks that the offset is on an
  /// instruction boundary of its function. Errors name the attach point.
  [[nodiscard]] Result<FileLocation> locate(const lang::AttachPoint& ap);

  /// The attach points `ap` stands for: itself, or one per function its wildcard symbol
  /// matches in the file (sorted by name). No match is an error naming the pattern.
  [[nodiscard]] Result<std::vector<lang::AttachPoint>> expand(const lang::AttachPoint& ap);

  /// The exit instructions of the function a return probe names, as attach points on each
  /// (symbol+offset, the symbol being the function or its ".cold" part), with a note for -v
  /// per exit and the finder's notes. Errors name the attach point.
  struct ReturnSites {
    std::vector<lang::AttachPoint> exits;
    std::vector<std::string> exit_notes;
  };
  [[nodiscard]] Result<ReturnSites> return_sites(const lang::AttachPoint& ap);

  /// Whether `path` (as written in a probe) is mapped in the process.
  [[nodiscard]] Result<bool> is_mapped(const lang::AttachPoint& ap,
                                       std::span<const process::Mapping> maps);

  /// Resolves every uprobe of the script in process `pid`. Probes landing on one
  /// address share one site. The bytes the process runs must equal the file's.
  /// With `points`: every attach point (wildcards expanded) is listed there, and one whose file
  /// is not mapped in the process yet is checked in the file only and left out of the result
  /// (deferred insertion) instead of failing.
  [[nodiscard]] Result<std::vector<ProbeSite>> resolve(const lang::CompiledScript& script,
                                                       pid_t pid,
                                                       std::span<const process::Mapping> maps,
                                                       const TargetReader& read_target,
                                                       std::vector<UprobePoint>* points = nullptr);

  /// Resolves `points` (from resolve(); their files mapped now) as resolve() does.
  [[nodiscard]] Result<std::vector<ProbeSite>> resolve_points(std::span<const UprobePoint> points,
                                                              pid_t pid,
                                                              std::span<const process::Mapping> maps,
                                                              const TargetReader& read_target);

  /// Whether the file `point` names is mapped (by device and inode) in `maps`.
  [[nodiscard]] bool is_mapped(const UprobePoint& point, std::span<const process::Mapping> maps);

 private:
  [[nodiscard]] Result<const elf::ElfFile*> open_file(const std::string& path);
  /// Resolves one attach point (no wildcard) of program `program` into `sites`, sharing the
  /// site of an earlier probe on the same address.
  [[nodiscard]] Status resolve_one(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                   std::span<const process::Mapping> maps,
                                   const TargetReader& read_target, std::vector<ProbeSite>& sites,
                                   bool repeat_exit = false, const std::string& exit_note = "");
  /// resolve_one for an entry probe, resolve_return for a return probe: what every path that
  /// turns attach points into sites must call.
  [[nodiscard]] Status resolve_point(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                     std::span<const process::Mapping> maps,
                                     const TargetReader& read_target,
                                     std::vector<ProbeSite>& sites);
  /// Resolves a return probe (uretprobe:) into one site per exit of its function.
  [[nodiscard]] Status resolve_return(const lang::AttachPoint& ap, uint32_t program, pid_t pid,
                                      std::span<const process::Mapping> maps,
                                      const TargetReader& read_target,
                                      std::vector<ProbeSite>& sites);
  [[nodiscard]] Result<std::string> absolute(const std::string& path) const;
  /// Locates `ap` in its file and says whether the file is mapped.
  [[nodiscard]] Result<UprobePoint> list_point(const lang::AttachPoint& ap, uint32_t program,
                                               std::span<const process::Mapping> maps);

  std::string working_directory_;
  pid_t pid_ = 0;
  std::map<std::string, std::unique_ptr<elf::ElfFile>> files_;
};

/// Fills each site's `neighbours` (the other sites in its function) once every site of a batch
/// is resolved: the mechanism planner keeps jumps off them.
void link_neighbours(std::vector<ProbeSite>& sites);

/// Whether `live` (the process's bytes at `original`'s run-time address) is a patch left by a
/// dprobe that was killed, over code that is otherwise the file's.
[[nodiscard]] bool is_leftover_patch(std::span<const uint8_t> live, uint64_t address,
                                     const x86_64::Instruction& original,
                                     std::span<const process::Mapping> maps);

/// Where file offset `file_offset` of the file (device, inode) is mapped in a process.
[[nodiscard]] Result<uint64_t> runtime_address(const elf::ElfFile& file, uint64_t file_vaddr,
                                               pid_t pid, std::span<const process::Mapping> maps);

}  // namespace dprobe::probes
