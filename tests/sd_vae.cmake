# diffusion/sd_vae: the VAE decoder and encoder against diffusers (goldens:
# tests/gen_sd_vae_goldens.py; the affine ones on the tiny checkpoint with patched 1-D tensors).
eng_test_exe(test_sd_vae test_sd_vae.c)
target_link_libraries(test_sd_vae PRIVATE sd)
eng_test_cases(test_sd_vae sd.vae "cpu;golden" tiny_parity ldm_format affine_decode encode_parity
               encode_ldm)
eng_test_cases(test_sd_vae sd.vae cpu errors batch2 encode_batch2 encode_clamp encode_errors parts)
