# Third-party libraries from Debian: stb (stb_image), OpenBLAS.

pkg_check_modules(STB REQUIRED IMPORTED_TARGET stb)

# OpenBLAS: the pthreads build (libopenblas-pthread-dev), told to use one thread per call at
# start-up (engine/eng_ops_gemm.c), so the engine's pool splits GEMMs and calls from several pool
# threads run at once. Debian's sequential build is not safe for concurrent calls (0.3.21 has no
# USE_LOCKING: two sgemm calls can share a packing buffer and return wrong numbers); it is still
# accepted as a fallback, with the calls serialized.
find_path(ENG_CBLAS_INCLUDE cblas.h
  HINTS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/aarch64-linux-gnu/openblas-pthread
        /usr/include/x86_64-linux-gnu/openblas-serial /usr/include/aarch64-linux-gnu/openblas-serial
        /usr/include/openblas /usr/include/x86_64-linux-gnu /usr/include)
find_library(ENG_OPENBLAS_LIB NAMES openblas
  HINTS /usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/aarch64-linux-gnu/openblas-pthread
        /usr/lib/x86_64-linux-gnu/openblas-serial /usr/lib/aarch64-linux-gnu/openblas-serial)
if(NOT ENG_CBLAS_INCLUDE OR NOT ENG_OPENBLAS_LIB)
  message(FATAL_ERROR "OpenBLAS not found: apt-get install libopenblas-pthread-dev")
endif()
message(STATUS "OpenBLAS: ${ENG_OPENBLAS_LIB} (cblas.h in ${ENG_CBLAS_INCLUDE})")
add_library(eng_openblas INTERFACE)
target_include_directories(eng_openblas SYSTEM INTERFACE ${ENG_CBLAS_INCLUDE})
target_link_libraries(eng_openblas INTERFACE ${ENG_OPENBLAS_LIB})
