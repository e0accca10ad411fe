# diffusion/sd_* on a device (tests/test_sd_device.c): the modules and the pipeline with their
# weights and activations on a device vs the same on the CPU in f32. mock_*: a stand-in device
# made of host memory and the CPU twins, so every device code path runs in CPU builds too (bit
# for bit). cuda_*: the CUDA backend, label "gpu", SKIP (77) without a device.
eng_test_exe(test_sd_device test_sd_device.c)
target_link_libraries(test_sd_device PRIVATE sd)
eng_test_cases(test_sd_device sd.device cpu mock_modules mock_pipe mock_errors)
if(ENG_CUDA)
  set(SD_DEVICE_GPU_CASES
    cuda_modules_f32 cuda_modules_f16 cuda_modules_bf16 cuda_pipe_f32 cuda_pipe_f16)
  eng_test_cases(test_sd_device sd.device gpu ${SD_DEVICE_GPU_CASES})
  # As tests/cuda.cmake: under AddressSanitizer the driver maps memory in ASan's shadow gap and
  # keeps allocations for the life of the process.
  if(ENG_SANITIZE MATCHES "address")
    set(_sd_supp ${CMAKE_CURRENT_BINARY_DIR}/lsan_sd_device.supp)
    file(WRITE ${_sd_supp} "# written by tests/sd_device.cmake: the CUDA driver's allocations\n"
                           "leak:libcuda.so\nleak:libcudart.so\nleak:libnvidia-ptxjitcompiler.so\n"
                           "leak:libcudnn\nleak:libcublas\n")
    foreach(c ${SD_DEVICE_GPU_CASES})
      set_property(TEST sd.device.${c} APPEND PROPERTY ENVIRONMENT
        "ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1" "LSAN_OPTIONS=suppressions=${_sd_supp}")
    endforeach()
  endif()
endif()
