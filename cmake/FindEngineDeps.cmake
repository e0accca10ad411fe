# Third-party libraries from Debian: stb (stb_image), OpenBLAS (the sequential build, so that
# the engine's own thread pool is the only one: BLAS calls are split across the pool).

pkg_check_modules(STB REQUIRED IMPORTED_TARGET stb)

# Prefer Debian's openblas-serial (libopenblas-serial-dev); fall back to whatever libopenblas
# is the default and ask it for one thread at start-up (eng_cpu_blas_init).
find_path(ENG_CBLAS_INCLUDE cblas.h
  HINTS /usr/include/x86_64-linux-gnu/openblas-serial /usr/include/aarch64-linux-gnu/openblas-serial
        /usr/include/openblas /usr/include/x86_64-linux-gnu /usr/include)
find_library(ENG_OPENBLAS_LIB NAMES openblas
  HINTS /usr/lib/x86_64-linux-gnu/openblas-serial /usr/lib/aarch64-linux-gnu/openblas-serial)
if(NOT ENG_CBLAS_INCLUDE OR NOT ENG_OPENBLAS_LIB)
  message(FATAL_ERROR "OpenBLAS not found: apt-get install libopenblas-serial-dev (or libopenblas-dev)")
endif()
message(STATUS "OpenBLAS: ${ENG_OPENBLAS_LIB} (cblas.h in ${ENG_CBLAS_INCLUDE})")
add_library(eng_openblas INTERFACE)
target_include_directories(eng_openblas SYSTEM INTERFACE ${ENG_CBLAS_INCLUDE})
target_link_libraries(eng_openblas INTERFACE ${ENG_OPENBLAS_LIB})
if(ENG_OPENBLAS_LIB MATCHES "openblas-serial")
  target_compile_definitions(eng_openblas INTERFACE ENG_OPENBLAS_SERIAL=1)
endif()
