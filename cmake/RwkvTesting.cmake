# Test registration. Every test is a GoogleTest executable; ctest labels: unit, mpi, gpu.
include(GoogleTest)

# Environment every MPI launch gets: root is allowed (CI runs as root) and the
# shared-memory transport avoids CMA, which containers often forbid.
set(RWKV_MPI_TEST_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_btl_vader_single_copy_mechanism=none
  OMPI_MCA_rmaps_base_oversubscribe=1)

# rwkv_add_test(name SOURCES ... LIBS ... [LABELS ...])
# One executable; each TEST() becomes its own ctest entry (discovered when ctest runs).
function(rwkv_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main rwkv_warnings)
  target_compile_definitions(${name} PRIVATE
    RWKV_SOURCE_DIR="${PROJECT_SOURCE_DIR}" RWKV_BINARY_DIR="${PROJECT_BINARY_DIR}")
  # No ENVIRONMENT here: gtest_discover_tests keeps only the first item of a list
  # property. Tests that launch mpiexec themselves set RWKV_MPI_TEST_ENV's variables.
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${T_LABELS}")
endfunction()

# rwkv_add_mpi_test(name NP n SOURCES ... LIBS ... [LABELS ...] [ARGS ...])
# (label mpi, plus LABELS) The executable runs under `mpiexec -n NP --oversubscribe`, with
# ARGS; the main is the project's MPI-aware gtest main (tests/mpi_gtest_main.cpp), which
# makes every rank agree on the verdict.
function(rwkv_add_mpi_test name)
  cmake_parse_arguments(T "" "NP" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/mpi_gtest_main.cpp)
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest MPI::MPI_CXX rwkv_warnings)
  target_compile_definitions(${name} PRIVATE
    RWKV_SOURCE_DIR="${PROJECT_SOURCE_DIR}" RWKV_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${name}
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_NP} --oversubscribe
            ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${name}> ${MPIEXEC_POSTFLAGS} ${T_ARGS})
  set(labels mpi ${T_LABELS})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 300
                       ENVIRONMENT "${RWKV_MPI_TEST_ENV}")
endfunction()

# rwkv_add_cli_test(name COMMAND ... [NP n] [EXPECT_EXIT code] [EXPECT_OUTPUT regex] [LABELS ...])
# Runs the rwkv executable (optionally under mpiexec) and checks its exit code and output.
function(rwkv_add_cli_test name)
  cmake_parse_arguments(T "" "NP;EXPECT_EXIT;EXPECT_OUTPUT" "COMMAND;LABELS" ${ARGN})
  if(NOT DEFINED T_EXPECT_EXIT)
    set(T_EXPECT_EXIT 0)
  endif()
  set(launch "")
  if(T_NP)
    set(launch ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_NP} --oversubscribe)
    if(NOT T_LABELS)
      set(T_LABELS mpi)
    endif()
  elseif(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND}
      -DEXPECT_EXIT=${T_EXPECT_EXIT} "-DEXPECT_OUTPUT=${T_EXPECT_OUTPUT}"
      "-DCMD=${launch};$<TARGET_FILE:rwkv>;${T_COMMAND}"
      -P ${PROJECT_SOURCE_DIR}/cmake/RunAndCheck.cmake
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 120
                       ENVIRONMENT "${RWKV_MPI_TEST_ENV}")
endfunction()

# The CUDA sources on the CPU (tests/kernels/cuda_emulation/; when RWKV_CUDA_EMULATION).
# rwkv_to_host(src sub out_var): src rewritten by to_host.py into cuda_emulation/<sub> of
# the build folder; the result's path in out_var.
function(rwkv_to_host src sub out_var)
  set(out ${PROJECT_BINARY_DIR}/cuda_emulation/${sub})
  set(script ${PROJECT_SOURCE_DIR}/tests/kernels/cuda_emulation/to_host.py)
  add_custom_command(OUTPUT ${out} COMMAND ${Python3_EXECUTABLE} ${script} ${src} ${out}
                     DEPENDS ${src} ${script} VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()

# rwkv_add_emulated_test(target SOURCE src FILTER filter [RACES] [LIBS ...])  (label unit)
# The gpu test src (a .cu file) built for the emulated GPU (the library
# rwkv_kernels_cuda_emulated) as `target`, one ctest entry run with the gtest filter (the
# cases small enough for the emulation's speed). RACES: under ThreadSanitizer
# (rwkv_kernels_cuda_emulated_races; the test fails at a data race between two emulated
# threads of a block).
function(rwkv_add_emulated_test target)
  cmake_parse_arguments(T "RACES" "SOURCE;FILTER" "LIBS" ${ARGN})
  rwkv_to_host(${T_SOURCE} tests/${target}.cpp out)
  add_executable(${target} ${out})
  if(T_RACES)
    set(kernels rwkv_kernels_cuda_emulated_races)
  else()
    set(kernels rwkv_kernels_cuda_emulated)
  endif()
  target_link_libraries(${target} PRIVATE ${T_LIBS} ${kernels} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${target} PRIVATE
    RWKV_SOURCE_DIR="${PROJECT_SOURCE_DIR}" RWKV_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${target} COMMAND ${target} --gtest_filter=${T_FILTER})
  set_tests_properties(${target} PROPERTIES LABELS unit TIMEOUT 900)
endfunction()
