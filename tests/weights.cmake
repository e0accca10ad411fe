# weights/: plans against the real modules' key lists (full size, no data written), tiny random
# checkpoints written and read back in both formats, architecture detection (sparse full-size
# headers), and bad input. Then `gen info` / `gen make-checkpoint` end to end.
eng_test_exe(test_wt_plan test_wt_plan.c)
target_link_libraries(test_wt_plan PRIVATE wt)
eng_test_cases(test_wt_plan wt.plan "cpu;golden"
  sd15_ldm sd15_diffusers sd21_ldm sd21_diffusers tiny_ldm tiny_diffusers)
eng_test_cases(test_wt_plan wt.plan cpu param_counts)

eng_test_exe(test_wt_model test_wt_model.c)
target_link_libraries(test_wt_model PRIVATE wt)
eng_test_cases(test_wt_model wt.model cpu
  roundtrip_ldm_f16 roundtrip_ldm_f32 roundtrip_diffusers_f16 roundtrip_diffusers_f32
  formats_agree openclip_fused load_ohwi load_dtypes detect_sd15 detect_sd21
  ckpt_refused zip_magic_refused missing_tensor wrong_shape read_wrong_shape diffusers_no_unet
  corrupt_model_index unknown_file_type config_heads_malformed config_hidden_act
  config_prediction_type ldm_metadata_heads)

# The CLI (needs diffusion/gen_weights.c wired into gen: see diffusion/gen_weights.h).
if(TARGET gen)
  add_test(NAME gen.make_checkpoint.tiny_ldm
    COMMAND sh -c "$<TARGET_FILE:gen> make-checkpoint --arch tiny --format ldm --dtype f16 --seed 1 -o \"$1\" && $<TARGET_FILE:gen> info \"$1\"" sh ${CMAKE_CURRENT_BINARY_DIR}/gen_tiny_ldm.safetensors)
  add_test(NAME gen.make_checkpoint.tiny_diffusers
    COMMAND sh -c "$<TARGET_FILE:gen> make-checkpoint --arch tiny --format diffusers --dtype f32 --seed 1 -o \"$1\" && $<TARGET_FILE:gen> info \"$1\"" sh ${CMAKE_CURRENT_BINARY_DIR}/gen_tiny_diffusers)
  add_test(NAME gen.info.ckpt_refused
    COMMAND sh -c "printf 'PK\\003\\004' > \"$1\"; $<TARGET_FILE:gen> info \"$1\" 2>&1 | grep 'pickle checkpoints are not loaded'" sh ${CMAKE_CURRENT_BINARY_DIR}/gen_refused.ckpt)
  set_tests_properties(gen.make_checkpoint.tiny_ldm gen.make_checkpoint.tiny_diffusers
    gen.info.ckpt_refused PROPERTIES LABELS cpu TIMEOUT 120)
  set_tests_properties(gen.make_checkpoint.tiny_ldm PROPERTIES PASS_REGULAR_EXPRESSION "family +sd1")
  set_tests_properties(gen.make_checkpoint.tiny_diffusers PROPERTIES PASS_REGULAR_EXPRESSION "format +diffusers")
endif()

# libFuzzer harness over wt_model_open (ENG_FUZZ=ON, clang): the diffusers config files and the
# ldm metadata keys, against fixed tiny weights (see tests/fuzz/fuzz_wt_model.c for the input
# layout). Seeds: the tiny preset's real config files as wt_make_checkpoint writes them, joined
# with 0xFF, and the tiny ldm file's metadata. Run e.g.
#   ./build-fz/tests/fuzz_wt_model -dict=tests/fuzz/wt_model.dict -max_len=8192 DIR tests/fuzz/seeds/wt_model
if(ENG_FUZZ)
  add_executable(fuzz_wt_model fuzz/fuzz_wt_model.c)
  target_link_libraries(fuzz_wt_model PRIVATE wt PkgConfig::CJSON)
  target_compile_options(fuzz_wt_model PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(fuzz_wt_model PRIVATE -fsanitize=fuzzer,address,undefined)
  set_target_properties(fuzz_wt_model PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  eng_target_defaults(fuzz_wt_model)
  # New inputs go to a corpus folder in the build tree, never into the seeds.
  add_test(NAME wt.model.fuzz_smoke
    COMMAND sh -c "mkdir -p \"$1\" && exec \"$2\" -seed=1 -runs=1000 -max_len=8192 -dict=\"$3\" \"$1\" \"$4\""
            sh ${CMAKE_CURRENT_BINARY_DIR}/corpus-wt_model $<TARGET_FILE:fuzz_wt_model>
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/wt_model.dict ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds/wt_model)
  set_tests_properties(wt.model.fuzz_smoke PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
