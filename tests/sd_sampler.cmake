# diffusion/sd_sampler: the samplers against diffusers (golden: tests/gen_sd_sampler_goldens.py).
eng_test_exe(test_sd_sampler test_sd_sampler.c)
target_link_libraries(test_sd_sampler PRIVATE sd)
eng_test_cases(test_sd_sampler sd.sampler "cpu;golden" golden_euler golden_euler_a golden_heun
               golden_ddim golden_dpmpp_2m golden_lcm)
eng_test_cases(test_sd_sampler sd.sampler cpu names errors plan)
