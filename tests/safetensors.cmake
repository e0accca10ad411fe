# safetensors: round trips, views, the writer's errors and a malformed corpus built by the test
# itself (one case per class of defect, each checking the code and the message).
eng_test_exe(test_eng_safetensors test_eng_safetensors.c)
eng_test_cases(test_eng_safetensors eng.safetensors cpu
  roundtrip_dtypes roundtrip_memory metadata_roundtrip lookup_by_name tensor_view
  view_unsupported view_misaligned header_layout valid_edges write_errors write_io_error
  write_replace empty_file short_file header_len_past_eof header_len_over_cap header_not_json
  header_bad_utf8 header_not_object entry_not_object unknown_dtype missing_dtype missing_shape
  missing_offsets shape_negative shape_not_integer shape_overflow size_mismatch offsets_past_end
  offsets_reversed offsets_malformed overlap hole duplicate_names metadata_not_string missing_file
  mutations)

# libFuzzer harness over eng_safetensors_open_memory (ENG_FUZZ=ON, clang; with it the whole
# engine is built with coverage, cmake/EngineWarnings.cmake).
#   ./build-st-fuzz/tests/fuzz_safetensors -dict=tests/fuzz/safetensors.dict -max_total_time=60 DIR
if(ENG_FUZZ)
  add_executable(fuzz_safetensors fuzz/fuzz_safetensors.c)
  target_link_libraries(fuzz_safetensors PRIVATE eng)
  target_compile_options(fuzz_safetensors PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(fuzz_safetensors PRIVATE -fsanitize=fuzzer,address,undefined)
  set_target_properties(fuzz_safetensors PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  eng_target_defaults(fuzz_safetensors)
  # A short smoke run (a few thousand inputs from the dictionary) so the harness is exercised.
  add_test(NAME eng.safetensors.fuzz_smoke
    COMMAND fuzz_safetensors -runs=20000 -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/safetensors.dict)
  set_tests_properties(eng.safetensors.fuzz_smoke PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
