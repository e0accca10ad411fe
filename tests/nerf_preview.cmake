# nerf/nerf_preview: progressive rendering for the viewer's NeRF modes.
eng_test_exe(test_nerf_preview test_nerf_preview.c)
target_link_libraries(test_nerf_preview PRIVATE nerf_lib)
eng_test_cases(test_nerf_preview nerf.preview cpu refines_to_render coarse_blocks_and_refresh depth errors)
