# Tokenizer: goldens from OpenAI's reference tokenizer with both vocabulary layouts (cpu;golden),
# the prompt form, A1111 weights, invalid input, malformed vocabularies, threads, a speed smoke
# run; then `gen tokenize` end to end. Cases SKIP without ../shared/data.
eng_test_exe(test_tok_clip test_tok_clip.c)
target_link_libraries(test_tok_clip PRIVATE tok PkgConfig::CJSON Threads::Threads)
eng_test_cases(test_tok_clip tok.clip "cpu;golden" goldens_openai goldens_hf ftfy_goldens)
eng_test_cases(test_tok_clip tok.clip cpu
  load_folder pad_truncate weights invalid_utf8 bpe_ranks bad_vocab find_vocab threads speed_smoke)

eng_test_exe(test_gen_tokenize test_gen_tokenize.c)
target_link_libraries(test_gen_tokenize PRIVATE PkgConfig::CJSON)
target_compile_definitions(test_gen_tokenize PRIVATE GEN_EXE="$<TARGET_FILE:gen>")
add_dependencies(test_gen_tokenize gen)
eng_test_cases(test_gen_tokenize gen.tokenize "cpu;golden" ids jsonl)
eng_test_cases(test_gen_tokenize gen.tokenize cpu
  default_vocab hf_folder missing_vocab bad_flag invalid_input)

# libFuzzer harness over prompts and both vocabulary parsers (ENG_FUZZ=ON, clang):
#   ./build-fuzz/tests/fuzz_tokenizer -dict=tests/fuzz/tokenizer.dict -max_total_time=60 DIR
if(ENG_FUZZ)
  add_executable(fuzz_tokenizer fuzz/fuzz_tokenizer.c)
  target_link_libraries(fuzz_tokenizer PRIVATE tok)
  target_compile_definitions(fuzz_tokenizer PRIVATE ENG_TEST_DATA_DIR="${ENG_DATA_DIR}")
  target_compile_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined)
  set_target_properties(fuzz_tokenizer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  eng_target_defaults(fuzz_tokenizer)
  add_test(NAME tok.clip.fuzz_smoke
    COMMAND fuzz_tokenizer -runs=20000 -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/tokenizer.dict)
  set_tests_properties(tok.clip.fuzz_smoke PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
