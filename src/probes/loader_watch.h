// The dynamic loader's rendezvous with debuggers (glibc's r_debug protocol, <link.h>): the loader
// calls r_brk (_dl_debug_state) whenever its list of loaded objects changes, with r_state saying
// whether a change is starting (RT_ADD, RT_DELETE) or done (RT_CONSISTENT). dprobe puts a
// breakpoint there to arm probes on a library dlopen has just mapped, before any of its code
// (constructors included) runs, and to forget those of a library dlclose has unmapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"
#include "probes/site_resolver.h"
#include "process/maps.h"

namespace dprobe::probes {

struct LoaderRendezvous {
  uint64_t r_debug = 0;  ///< struct r_debug in the target (0: unknown; every stop is a change)
  uint64_t r_brk = 0;    ///< the function the loader calls around each change
  std::string loader;    ///< the loader's file, as the maps name it
};

/// Finds the rendezvous of a dynamically linked process through its loader (AT_BASE): the
/// symbols _r_debug and _dl_debug_state of ld.so's dynamic symbol table. r_brk is read from
/// r_debug once the loader has filled it in, else taken from _dl_debug_state.
/// An error says why there is none ("no dynamic loader (statically linked?)").
[[nodiscard]] Result<LoaderRendezvous> find_loader_rendezvous(
    pid_t pid, std::span<const process::Mapping> maps, const TargetReader& read_target);

/// The int3-ptrace site dprobe arms at r_brk (no programs: dprobe acts on it itself).
[[nodiscard]] Result<ProbeSite> loader_breakpoint_site(const LoaderRendezvous& rendezvous,
                                                       std::span<const process::Mapping> maps,
                                                       const TargetReader& read_target);

enum class LoaderState { Consistent, Adding, Deleting, Unknown };

/// r_state of the rendezvous now (Unknown when r_debug is unknown or unreadable).
[[nodiscard]] LoaderState read_loader_state(const LoaderRendezvous& rendezvous,
                                            const TargetReader& read_target);

}  // namespace dprobe::probes
