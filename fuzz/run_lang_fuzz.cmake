# The `lang_fuzz` ctest test: builds fuzz/lang with clang (a separate build tree, ccache'd when
# available), seeds a fresh corpus from the e2e case scripts and runs the fuzzer for a bounded
# time. Fails on any crash, sanitizer report, leak, timeout or out-of-memory.
#   cmake -DSOURCE_DIR=... -DBINARY_DIR=... -DCLANGXX=... -DPYTHON=... [-DSECONDS=60]
#         -P run_lang_fuzz.cmake
if(NOT DEFINED SECONDS)
  set(SECONDS 60)
endif()
set(build ${BINARY_DIR}/build)
set(launcher)
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "lang_fuzz: ${what} failed (${status})")
  endif()
endfunction()

run("configuring the clang build" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/fuzz/lang -B ${build} -G Ninja
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=${CLANGXX} ${launcher})
run("building lang_fuzzer" ${CMAKE_COMMAND} --build ${build})

set(seeds ${BINARY_DIR}/seeds)
set(corpus ${BINARY_DIR}/corpus)
set(crashes ${BINARY_DIR}/crashes)
file(REMOVE_RECURSE ${seeds} ${corpus} ${crashes})
file(MAKE_DIRECTORY ${corpus} ${crashes})
run("writing seeds" ${PYTHON} ${SOURCE_DIR}/fuzz/make_seeds.py ${SOURCE_DIR}/tests/e2e/cases
    ${seeds})
# New inputs go to `corpus`; `seeds` stays as generated. A crashing input is written into
# `crashes` and named in the output.
run("fuzzing (a crash input, if any, is in ${crashes})" ${build}/lang_fuzzer
    -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -dict=${SOURCE_DIR}/fuzz/lang/lang.dict -artifact_prefix=${crashes}/ ${corpus} ${seeds})
