# One helper per kind of target (see STYLE.md "Build").
#
# signet_library(NAME name SRCS ... [HDRS ...] [DEPS ...] [PRIVATE_DEPS ...])
#   creates static library signet_<name> with alias signet::<name>; the include root is src/.
# signet_test(NAME name SRCS ... [DEPS ...] [LABELS ...] [TIMEOUT s])
#   (see also signet_fuzz at the end)
#   creates executable <name> linked with GoogleTest and registers it with CTest, labelled.

function(signet_apply_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
    -Wno-sign-conversion -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
    -Wimplicit-fallthrough)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports impossible overlaps in std::string concatenation at -O3 (GCC bug 105651),
    # and impossible over-reads inside std::set<std::vector<uint8_t>>::insert at -O3 (the same
    # family of false positives from its value-range analysis of inlined library code).
    target_compile_options(${target} PRIVATE -Wno-restrict -Wno-stringop-overread)
  endif()
  if(SIGNET_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(signet_apply_sanitizers target)
  if(SIGNET_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

function(signet_library)
  cmake_parse_arguments(L "" "NAME" "SRCS;HDRS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(signet_${L_NAME} STATIC ${L_SRCS} ${L_HDRS})
  add_library(signet::${L_NAME} ALIAS signet_${L_NAME})
  target_include_directories(signet_${L_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(signet_${L_NAME} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  set_target_properties(signet_${L_NAME} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  signet_apply_warnings(signet_${L_NAME})
  signet_apply_sanitizers(signet_${L_NAME})
endfunction()

function(signet_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT SIGNET_BUILD_TESTS)
    return()
  endif()
  add_executable(${T_NAME} ${T_SRCS})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  signet_apply_warnings(${T_NAME})
  signet_apply_sanitizers(${T_NAME})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "SIGNET_SOURCE_DIR=${PROJECT_SOURCE_DIR};SIGNET_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

function(signet_binary)
  cmake_parse_arguments(B "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${B_NAME} ${B_SRCS})
  target_link_libraries(${B_NAME} PRIVATE ${B_DEPS})
  signet_apply_warnings(${B_NAME})
  signet_apply_sanitizers(${B_NAME})
endfunction()

# signet_fuzz(NAME name SRCS ... DEPS ... CORPUS dir): a libFuzzer target <name>_fuzz with
# SIGNET_FUZZ (the fuzz preset, `make fuzz`). In the other builds with tests, the same sources are
# linked with tests/fuzz_replay_main.cc into <name>_fuzz_replay, a CTest test (label "fuzz") that
# runs every committed seed in CORPUS through the target: the seeds, and any crash input added to
# them, are regression tests under `make test`, ASan+UBSan included.
function(signet_fuzz)
  cmake_parse_arguments(F "" "NAME;CORPUS" "SRCS;DEPS" ${ARGN})
  if(NOT F_CORPUS)
    message(FATAL_ERROR "signet_fuzz(${F_NAME}): CORPUS is required")
  endif()
  if(SIGNET_FUZZ)
    add_executable(${F_NAME}_fuzz ${F_SRCS})
    target_link_libraries(${F_NAME}_fuzz PRIVATE ${F_DEPS})
    target_link_options(${F_NAME}_fuzz PRIVATE -fsanitize=fuzzer)
    signet_apply_warnings(${F_NAME}_fuzz)
    return()
  endif()
  if(NOT SIGNET_BUILD_TESTS)
    return()
  endif()
  add_executable(${F_NAME}_fuzz_replay ${F_SRCS} ${PROJECT_SOURCE_DIR}/tests/fuzz_replay_main.cc)
  target_link_libraries(${F_NAME}_fuzz_replay PRIVATE ${F_DEPS})
  signet_apply_warnings(${F_NAME}_fuzz_replay)
  signet_apply_sanitizers(${F_NAME}_fuzz_replay)
  add_test(NAME ${F_NAME}_fuzz_replay
    COMMAND ${F_NAME}_fuzz_replay ${CMAKE_CURRENT_SOURCE_DIR}/${F_CORPUS})
  set_tests_properties(${F_NAME}_fuzz_replay PROPERTIES LABELS fuzz TIMEOUT 300)
endfunction()
