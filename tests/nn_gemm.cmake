# GEMM family and convolution (tests/test_nn_gemm.c: CPU twins against f64 loops, malformed
# calls; tests/test_cuda_nn_gemm.c: cuBLASLt / cuDNN against the CPU twins, SKIP without a GPU).
eng_test_exe(test_nn_gemm test_nn_gemm.c)
eng_test_cases(test_nn_gemm eng.nn cpu
  gemm.shapes gemm.batched gemm.epilogue gemm.linear gemm.matmul gemm.errors
  conv.pointwise conv.k3 conv.stride2 conv.tiles conv.errors)

if(ENG_CUDA)
  eng_test_exe(test_cuda_nn_gemm test_cuda_nn_gemm.c)
  set(ENG_CUDA_NN_GEMM_CASES
    gemm.f32 gemm.f16 gemm.bf16 gemm.epilogue gemm.batched gemm.ops gemm.errors
    conv.f32 conv.f16 conv.bf16 conv.ops conv.errors)
  eng_test_cases(test_cuda_nn_gemm cuda gpu ${ENG_CUDA_NN_GEMM_CASES})
  if(ENG_SANITIZE MATCHES "address")
    foreach(c ${ENG_CUDA_NN_GEMM_CASES})
      set_property(TEST cuda.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1"
        "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_BINARY_DIR}/lsan_cuda.supp")
    endforeach()
  endif()
endif()
