# Fails the build when the linked agent needs a load-time relocation (it is loaded without a
# dynamic loader) or carries writable sections (all its state lives in the shared region).
# Usage: cmake -DREADELF=... -DELF=... -P check_blob.cmake
execute_process(COMMAND ${READELF} -r -W ${ELF} OUTPUT_VARIABLE relocs RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "agent blob: readelf -r ${ELF} failed")
endif()
if(NOT relocs MATCHES "There are no relocations in this file")
  message(FATAL_ERROR "agent blob: ${ELF} needs load-time relocations (an absolute address in "
                      "code or data: a function-pointer table, a vtable?):\n${relocs}")
endif()

execute_process(COMMAND ${READELF} -S -W ${ELF} OUTPUT_VARIABLE sections RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "agent blob: readelf -S ${ELF} failed")
endif()
string(REGEX MATCHALL "\\] \\.(got|got\\.plt|plt|data|bss|tdata|tbss)[^\n]*" bad "${sections}")
if(bad)
  message(FATAL_ERROR "agent blob: ${ELF} has sections the flat image cannot hold: ${bad}")
endif()
