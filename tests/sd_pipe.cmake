# diffusion/sd_pipe: the whole pipeline against diffusers on the tiny random checkpoint
# (golden: tests/gen_sd_pipe_goldens.py): every sampler, Karras, v-prediction, no CFG, img2img.
eng_test_exe(test_sd_pipe test_sd_pipe.c)
target_link_libraries(test_sd_pipe PRIVATE sd)
eng_test_cases(test_sd_pipe sd.pipe "cpu;golden"
  cond euler euler_karras euler_a heun ddim dpmpp_2m dpmpp_2m_karras lcm euler_v
  dpmpp_2m_karras_v ddim_v nocfg_euler img2img_euler img2img_ddim img2img_dpmpp_2m ldm_format
  sd2_ddim_v sd2_euler_a_v sd2_dpmpp_2m_karras_v)
eng_test_cases(test_sd_pipe sd.pipe cpu batch errors)
eng_test_cases(test_sd_pipe sd.pipe cpu cli)
set_tests_properties(sd.pipe.cli PROPERTIES ENVIRONMENT "ENG_TEST_GEN=$<TARGET_FILE:gen>")
