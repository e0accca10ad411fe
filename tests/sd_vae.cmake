# diffusion/sd_vae: the VAE decoder against diffusers (golden: tests/gen_sd_vae_goldens.py).
eng_test_exe(test_sd_vae test_sd_vae.c)
target_link_libraries(test_sd_vae PRIVATE sd)
eng_test_cases(test_sd_vae sd.vae "cpu;golden" tiny_parity ldm_format)
eng_test_cases(test_sd_vae sd.vae cpu errors batch2)
