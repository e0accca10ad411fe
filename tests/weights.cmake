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
  corrupt_model_index unknown_file_type)

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
