// Names of the system calls dprobe runs inside targets, for error messages.
#pragma once

#include <string>

namespace dprobe::process {

/// "mmap", "getpid", ... or "syscall 123" for numbers this table does not know.
[[nodiscard]] std::string syscall_name(long number);

} // namespace dprobe::process
