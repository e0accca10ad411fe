# diffusion/sd_block: the ResnetBlock2D / Upsample2D / Downsample2D shared by the UNet and the VAE,
# against plain loops (their numerics against diffusers: the sd.unet and sd.vae goldens).
eng_test_exe(test_sd_block test_sd_block.c)
target_link_libraries(test_sd_block PRIVATE sd)
eng_test_cases(test_sd_block sd.block cpu downsample upsample errors load dest)
