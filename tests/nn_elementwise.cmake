# The elementwise and normalisation op families (engine/eng_ops_elementwise.c, eng_ops_norm.c,
# cuda/elementwise.cu, cuda/norm.cu).
#  eng.nn.*          CPU ops and twins against double references (label cpu).
#  cuda.*            each CUDA kernel against its CPU twin in f32, f16 and bf16 (label gpu; SKIP
#                    without a device).
#  eng.nn.harness.*  the same GPU test program with ENG_TEST_FAKE_CUDA=1: host memory and the
#                    twins (between dtype conversions) stand in for the device, which tests the
#                    harness (buffers, strides, guards, tolerances) on every machine (label cpu).
eng_test_exe(test_nn_elementwise test_nn_elementwise.c)
eng_test_cases(test_nn_elementwise eng.nn cpu
  unary.acts unary.values unary.errors binary.broadcast binary.errors geglu.vs_ref
  permute.contiguous concat.each_dim upsample.nearest2x temb.vs_formula)

eng_test_exe(test_nn_norm test_nn_norm.c)
eng_test_cases(test_nn_norm eng.nn cpu
  groupnorm.g32 groupnorm.g1_odd groupnorm.errors layernorm.vs_ref softmax.vs_ref)

eng_test_exe(test_cuda_nn_elementwise test_cuda_nn_elementwise.c)
set(ENG_NN_EW_KERNEL_CASES
  unary.vs_cpu binary.vs_cpu geglu.vs_cpu copy.vs_cpu upsample.vs_cpu temb.vs_cpu
  groupnorm.vs_cpu groupnorm.split_vs_cpu layernorm.vs_cpu softmax.vs_cpu)
foreach(c ${ENG_NN_EW_KERNEL_CASES})
  add_test(NAME eng.nn.harness.${c} COMMAND test_cuda_nn_elementwise --case ${c})
  set_tests_properties(eng.nn.harness.${c} PROPERTIES LABELS cpu TIMEOUT 300
    ENVIRONMENT "ENG_TEST_FAKE_CUDA=1")
endforeach()

if(ENG_CUDA)
  set(ENG_CUDA_NN_EW_CASES ${ENG_NN_EW_KERNEL_CASES} ops.dispatch elementwise.errors)
  eng_test_cases(test_cuda_nn_elementwise cuda gpu ${ENG_CUDA_NN_EW_CASES})
  # As tests/cuda.cmake: the CUDA driver maps memory in ASan's shadow gap and keeps allocations
  # LeakSanitizer would report.
  if(ENG_SANITIZE MATCHES "address")
    set(_supp ${CMAKE_CURRENT_BINARY_DIR}/lsan_cuda_nn_elementwise.supp)
    file(WRITE ${_supp} "# written by tests/nn_elementwise.cmake: the CUDA driver's allocations\n"
                        "leak:libcuda.so\nleak:libcudart.so\nleak:libnvidia-ptxjitcompiler.so\n")
    foreach(c ${ENG_CUDA_NN_EW_CASES})
      set_property(TEST cuda.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1" "LSAN_OPTIONS=suppressions=${_supp}")
    endforeach()
    foreach(c ${ENG_NN_EW_KERNEL_CASES})
      set_property(TEST eng.nn.harness.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1" "LSAN_OPTIONS=suppressions=${_supp}")
    endforeach()
  endif()
endif()
