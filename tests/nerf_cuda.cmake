# nerf/nerf_cuda.h: the NeRF CUDA kernels against their CPU twins (tests/test_nerf_cuda.c).
# "layout" (cpu) runs in every build: the device field's parameter layout and the scratch sizes,
# and, without CUDA, the launchers' ENG_E_UNSUPPORTED; "train_math" (cpu) the maths the device
# trainer shares with its twins (nerf_train_math.h). The kernel cases (gpu) exit 77 (SKIP)
# without a device.
eng_test_exe(test_nerf_cuda test_nerf_cuda.c)
target_link_libraries(test_nerf_cuda PRIVATE nerf_lib)
eng_test_cases(test_nerf_cuda nerf.cuda cpu layout train_math)
if(ENG_CUDA)
  set(NERF_CUDA_TEST_CASES
    grid_fwd grid_bwd sh mlp field field_contract march march_contract composite adam occgrid
    occgrid_contract errors train_rays cam_rays l2
    trainer trainer_contract)
  eng_test_cases(test_nerf_cuda nerf.cuda gpu ${NERF_CUDA_TEST_CASES})
  # the trainer cases train the CPU and the CUDA trainers for 300 steps each
  set_tests_properties(nerf.cuda.trainer nerf.cuda.trainer_contract PROPERTIES TIMEOUT 900)
  # As tests/cuda.cmake: the CUDA driver maps memory in ASan's shadow gap and keeps allocations
  # for the life of the process.
  if(ENG_SANITIZE MATCHES "address")
    set(_nerf_supp ${CMAKE_CURRENT_BINARY_DIR}/lsan_nerf_cuda.supp)
    file(WRITE ${_nerf_supp} "# written by tests/nerf_cuda.cmake: the CUDA driver's allocations\n"
                             "leak:libcuda.so\nleak:libcudart.so\nleak:libnvidia-ptxjitcompiler.so\n")
    foreach(c ${NERF_CUDA_TEST_CASES})
      set_property(TEST nerf.cuda.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1" "LSAN_OPTIONS=suppressions=${_nerf_supp}")
    endforeach()
  endif()
endif()
