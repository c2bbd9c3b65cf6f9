// The natively linked agent (tests, benchmarks): a writable stand-in for the blob header, so a
// test can point the SIGTRAP handler at its region by setting region_address.
#include "abi/agent_blob.h"

extern "C" dprobe::abi::AgentBlobHeader agent_blob_header;
dprobe::abi::AgentBlobHeader agent_blob_header = {};
