#include "probes/probe_site.h"

namespace dprobe::probes {

const char* mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::Int3Ptrace:
      return "int3-ptrace";
  }
  return "unknown";
}

}  // namespace dprobe::probes
