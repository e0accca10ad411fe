# CUDA backend tests (tests/test_cuda_ops.c): each kernel against its CPU twin, bit for bit, plus
# discovery, blocks, streams and error paths. Label "gpu"; every case exits 77 (SKIP) without a
# device.
if(ENG_CUDA)
  eng_test_exe(test_cuda_ops test_cuda_ops.c)
  set(ENG_CUDA_TEST_CASES
    device.info alloc.blocks stream.per_job philox.vs_cpu add.vs_cpu errors ctx.attach)
  eng_test_cases(test_cuda_ops cuda gpu ${ENG_CUDA_TEST_CASES})

  # Under AddressSanitizer the CUDA driver maps memory in ASan's shadow gap, and libcuda keeps
  # allocations for the life of the process that LeakSanitizer would report as leaks.
  if(ENG_SANITIZE MATCHES "address")
    set(_supp ${CMAKE_CURRENT_BINARY_DIR}/lsan_cuda.supp)
    file(WRITE ${_supp} "# written by tests/cuda.cmake: the CUDA driver's own allocations\n"
                        "leak:libcuda.so\nleak:libcudart.so\nleak:libnvidia-ptxjitcompiler.so\n")
    foreach(c ${ENG_CUDA_TEST_CASES})
      set_property(TEST cuda.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1" "LSAN_OPTIONS=suppressions=${_supp}")
    endforeach()
  endif()
endif()
