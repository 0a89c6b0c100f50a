# ctest driver for wire_fuzz: configure + build the clang fuzz project, write the seed corpus, fuzz.
# Inputs: SOURCE_DIR (tests/fuzz), BINARY_DIR, CXX, SECONDS.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=
    -DCMAKE_EXPORT_COMPILE_COMMANDS=OFF)
run(${CMAKE_COMMAND} --build ${BINARY_DIR} -j2)
file(REMOVE_RECURSE ${BINARY_DIR}/seeds)
run(${BINARY_DIR}/wire_fuzz_seeds ${BINARY_DIR}/seeds)
# New inputs libFuzzer finds go to corpus/ and are kept for the next run; seeds/ is regenerated each time;
# regressions/ holds (tiny) inputs that once crashed the decoder.
file(MAKE_DIRECTORY ${BINARY_DIR}/corpus)
run(${BINARY_DIR}/wire_fuzzer -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -max_len=65536
    -print_final_stats=1 -artifact_prefix=${BINARY_DIR}/ ${BINARY_DIR}/corpus ${BINARY_DIR}/seeds
    ${SOURCE_DIR}/regressions)
