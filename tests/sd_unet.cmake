# diffusion/sd_unet: the UNet (one step) against diffusers' UNet2DConditionModel on the tiny
# random checkpoint with affine-patched 1-D tensors (golden: tests/gen_sd_unet_goldens.py).
eng_test_exe(test_sd_unet test_sd_unet.c)
target_link_libraries(test_sd_unet PRIVATE sd)
eng_test_cases(test_sd_unet sd.unet "cpu;golden" tiny_parity)
eng_test_cases(test_sd_unet sd.unet cpu errors batch2)
