# Every required dependency comes from the distribution (scripts/setup.sh installs them).
find_package(MPI 3.0 REQUIRED COMPONENTS C CXX)

# Parallel HDF5 is required: checkpoints of tensor-parallel runs are written collectively.
set(HDF5_PREFER_PARALLEL ON)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "HDF5 found at ${HDF5_INCLUDE_DIRS} is serial; rwkv needs parallel HDF5 "
    "(Debian/Ubuntu: apt-get install libhdf5-openmpi-dev).")
endif()
add_library(rwkv_hdf5 INTERFACE)
target_include_directories(rwkv_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_compile_definitions(rwkv_hdf5 INTERFACE ${HDF5_DEFINITIONS} ${HDF5_C_DEFINITIONS})
target_link_libraries(rwkv_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)

find_package(yaml-cpp REQUIRED)
find_package(Boost 1.71 REQUIRED COMPONENTS program_options)
find_package(GTest REQUIRED)
find_package(ZLIB REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(RWKV_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread
          HINTS /usr/include/x86_64-linux-gnu/openblas-pthread)
if(NOT RWKV_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "cblas.h (OpenBLAS) not found: apt-get install libopenblas-dev")
endif()
add_library(rwkv_blas INTERFACE)
target_include_directories(rwkv_blas SYSTEM INTERFACE ${RWKV_CBLAS_INCLUDE_DIR})
target_link_libraries(rwkv_blas INTERFACE BLAS::BLAS)

find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
