# nerf/nerf_live: training as a scheduler job with viewer frames between its slices.
eng_test_exe(test_nerf_live test_nerf_live.c)
target_link_libraries(test_nerf_live PRIVATE nerf_lib)
eng_test_cases(test_nerf_live nerf.live cpu runs_to_limit frames_threaded frames_pumped errors)
