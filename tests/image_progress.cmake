# Image I/O (eng.image.*: PNG/JPEG reading, PNG writing with text chunks) and progress bars
# (eng.progress.*). The image test writes a JPEG with stb_image_write and crafts PNG chunks with
# zlib's crc32, so it links those directly.
eng_test_exe(test_eng_image test_eng_image.c)
target_link_libraries(test_eng_image PRIVATE PkgConfig::STB ZLIB::ZLIB)
eng_test_cases(test_eng_image eng.image cpu
  png_roundtrip force_channels text_roundtrip text_chunk_kinds text_bomb jpeg_read real_png
  real_jpeg missing_file truncated_png garbage other_formats chunk_past_end too_large bad_channels write_errors)

eng_test_exe(test_eng_progress test_eng_progress.c)
eng_test_cases(test_eng_progress eng.progress cpu
  plain_lines plain_interval tty_line unknown_total ci_forces_plain throttle slow_rate columns
  bad_params)

# libFuzzer harnesses over the from-memory entry points (ENG_FUZZ=ON, clang):
#   fuzz_image     eng_image_read_memory (stb_image, every format, forced channel counts)
#   fuzz_png_text  eng_image_png_text_read_memory (libpng text chunks) and the PNG encoder
# ENG_FUZZ builds the whole engine with coverage; run e.g.
#   ./tests/fuzz_image -dict=tests/fuzz/png.dict -max_total_time=60 CORPUS
if(ENG_FUZZ)
  foreach(fz fuzz_image fuzz_png_text)
    add_executable(${fz} fuzz/${fz}.c)
    target_link_libraries(${fz} PRIVATE eng)
    target_compile_options(${fz} PRIVATE -fsanitize=fuzzer,address,undefined -g)
    target_link_options(${fz} PRIVATE -fsanitize=fuzzer,address,undefined)
    set_target_properties(${fz} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    eng_target_defaults(${fz})
  endforeach()
  target_link_libraries(fuzz_png_text PRIVATE ZLIB::ZLIB) # crc32, to repair mutated chunks
  # Short smoke runs so the harnesses are exercised by `ctest -L fuzz`.
  add_test(NAME eng.image.fuzz_smoke COMMAND fuzz_image -runs=20000 -max_len=4096)
  add_test(NAME eng.image.fuzz_png_text_smoke COMMAND fuzz_png_text -runs=20000 -max_len=4096)
  set_tests_properties(eng.image.fuzz_smoke eng.image.fuzz_png_text_smoke
    PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
