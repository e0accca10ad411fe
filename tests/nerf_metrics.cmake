# nerf/nerf_metrics: PSNR and SSIM against tests/gen_nerf_metrics_goldens.py's numpy reference.
eng_test_exe(test_nerf_metrics test_nerf_metrics.c)
target_link_libraries(test_nerf_metrics PRIVATE nerf_lib)
eng_test_cases(test_nerf_metrics nerf.metrics cpu reference)
