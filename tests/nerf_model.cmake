# nerf/nerf_hashgrid, nerf_sh, nerf_mlp, nerf_field, nerf_adam: the model maths on the CPU against
# references written in the test (double precision), finite differences, determinism across
# thread counts, and a speed smoke (prints points/s, asserts nothing about time).
eng_test_exe(test_nerf_model test_nerf_model.c)
target_link_libraries(test_nerf_model PRIVATE nerf_lib)
eng_test_cases(test_nerf_model nerf.model cpu
  grid_levels grid_fwd grid_bwd_fd grid_bwd_pos_fd sh_values mlp_fwd_bwd_fd field_fd field_fd_contract determinism
  adam errors speed)
