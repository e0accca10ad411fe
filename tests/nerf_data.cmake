# nerf/nerf_data (transforms.json datasets, rays) and nerf/nerf_colmap (COLMAP text import):
# lego_400 and fox from ../shared/data (labels cpu;data), and malformed inputs, undistortion and a
# synthetic COLMAP model written to the test's tmpdir (cpu).
eng_test_exe(test_nerf_data test_nerf_data.c)
target_link_libraries(test_nerf_data PRIVATE nerf_lib PkgConfig::CJSON)
eng_test_cases(test_nerf_data nerf.data "cpu;data" lego_train lego_val lego_file fox)
eng_test_cases(test_nerf_data nerf.data cpu
  parse_intrinsics undistort distorted_ray missing_file not_json no_frames matrix_3x4 row_3
  non_finite negative_focal bad_fields missing_image all_missing mixed_sizes size_mismatch
  bad_image split_folder)
eng_test_cases(test_nerf_data nerf.colmap cpu import import_one_camera bad_models)

# libFuzzer harness over transforms.json and COLMAP text from memory (ENG_FUZZ=ON, clang):
#   ./build-fuzz/tests/fuzz_nerf_transforms -dict=tests/fuzz/nerf_transforms.dict \
#       -max_total_time=60 CORPUS tests/fuzz/seeds/nerf_transforms
if(ENG_FUZZ)
  add_executable(fuzz_nerf_transforms fuzz/fuzz_nerf_transforms.c)
  target_link_libraries(fuzz_nerf_transforms PRIVATE nerf_lib)
  target_compile_options(fuzz_nerf_transforms PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(fuzz_nerf_transforms PRIVATE -fsanitize=fuzzer,address,undefined)
  set_target_properties(fuzz_nerf_transforms PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  eng_target_defaults(fuzz_nerf_transforms)
  add_test(NAME nerf.data.fuzz_smoke
    COMMAND fuzz_nerf_transforms -runs=20000 -max_len=4096
            -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/nerf_transforms.dict)
  set_tests_properties(nerf.data.fuzz_smoke PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
