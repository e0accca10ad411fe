# diffusion/sd_clip: the CLIP text encoder against transformers' CLIPTextModel on the tiny random
# checkpoint (goldens: tests/gen_sd_clip_goldens.py), clip skip, ldm == diffusers, nonzero biases
# and LayerNorm affines, GELU (OpenCLIP), bad input.
eng_test_exe(test_sd_clip test_sd_clip.c)
target_link_libraries(test_sd_clip PRIVATE sd)
eng_test_cases(test_sd_clip sd.clip "cpu;golden" tiny_parity clip_skip2 tiny_ldm affine gelu)
eng_test_cases(test_sd_clip sd.clip cpu errors)
