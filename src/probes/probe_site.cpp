#include "probes/probe_site.h"

namespace dprobe::probes {

const char* mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::Jump:
      return "jump";
    case Mechanism::Int3Boost:
      return "int3-boost";
    case Mechanism::Int3Ptrace:
      return "int3-ptrace";
  }
  return "unknown";
}

std::optional<Mechanism> parse_mechanism(std::string_view name) {
  for (Mechanism m : {Mechanism::Jump, Mechanism::Int3Boost, Mechanism::Int3Ptrace}) {
    if (name == mechanism_name(m)) return m;
  }
  return std::nullopt;
}

}  // namespace dprobe::probes
