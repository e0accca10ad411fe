# The SD 2.x path on the "tiny-sd2" preset: OpenCLIP text encoder (GELU, fused in_proj in ldm
# files, penultimate layer) vs transformers' CLIPTextModel, linear-projection UNet vs diffusers'
# UNet2DConditionModel, both checkpoint formats (golden: tests/gen_sd2_goldens.py), the preset's
# round trip through make-checkpoint and wt_model_open, and `gen info` on both formats.
eng_test_exe(test_sd2 test_sd2.c)
target_link_libraries(test_sd2 PRIVATE sd)
eng_test_cases(test_sd2 sd.sd2 cpu preset roundtrip_ldm roundtrip_diffusers)
eng_test_cases(test_sd2 sd.sd2 "cpu;golden" clip_diffusers clip_ldm unet_diffusers unet_ldm)

if(TARGET gen)
  add_test(NAME gen.make_checkpoint.tiny_sd2_ldm
    COMMAND sh -c "$<TARGET_FILE:gen> make-checkpoint --arch tiny-sd2 --format ldm --dtype f16 --seed 1 -o \"$1\" && $<TARGET_FILE:gen> info \"$1\"" sh ${CMAKE_CURRENT_BINARY_DIR}/gen_tiny_sd2_ldm.safetensors)
  add_test(NAME gen.make_checkpoint.tiny_sd2_diffusers
    COMMAND sh -c "$<TARGET_FILE:gen> make-checkpoint --arch tiny-sd2 --format diffusers --dtype f32 --seed 1 -o \"$1\" && $<TARGET_FILE:gen> info \"$1\"" sh ${CMAKE_CURRENT_BINARY_DIR}/gen_tiny_sd2_diffusers)
  set_tests_properties(gen.make_checkpoint.tiny_sd2_ldm gen.make_checkpoint.tiny_sd2_diffusers
    PROPERTIES LABELS cpu TIMEOUT 120)
  # ldm: the OpenCLIP layout is detected (the prediction type is not stored in ldm files)
  set_tests_properties(gen.make_checkpoint.tiny_sd2_ldm PROPERTIES
    PASS_REGULAR_EXPRESSION "family +sd2.*openclip hidden 32 layers 2 \\(3 in the file\\) heads 2 intermediate 64 [^\n]* act gelu")
  set_tests_properties(gen.make_checkpoint.tiny_sd2_diffusers PROPERTIES
    PASS_REGULAR_EXPRESSION "family +sd2\nprediction v_prediction\n.*proj linear")
endif()
