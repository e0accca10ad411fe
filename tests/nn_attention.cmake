# Attention: the CPU twin (tiled, threaded, online softmax) against a naive f64 reference, views,
# masks and malformed calls (tests/test_nn_attention.c); the CUDA kernels (flash attention on
# tensor cores for f16/bf16, the simple kernel for f32 and the fallbacks) against the twin
# (tests/test_cuda_nn_attention.c, label gpu, SKIP without a device).
eng_test_exe(test_nn_attention test_nn_attention.c)
eng_test_cases(test_nn_attention eng.nn.attention cpu
  vs_naive causal online_rescale strided_views threads errors)

if(ENG_CUDA)
  eng_test_exe(test_cuda_nn_attention test_cuda_nn_attention.c)
  set(ENG_CUDA_ATTENTION_CASES f32 f16 bf16 fallback sd_shapes views errors op_dispatch)
  eng_test_cases(test_cuda_nn_attention cuda.attention gpu ${ENG_CUDA_ATTENTION_CASES})
  if(ENG_SANITIZE MATCHES "address")
    foreach(c ${ENG_CUDA_ATTENTION_CASES})
      set_property(TEST cuda.attention.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1"
        "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_BINARY_DIR}/lsan_cuda.supp")
    endforeach()
  endif()
endif()
