# nerf/nerf_mesh: the derived marching-cubes table, closed and outward meshes, PLY output.
eng_test_exe(test_nerf_mesh test_nerf_mesh.c)
target_link_libraries(test_nerf_mesh PRIVATE nerf_lib)
eng_test_cases(test_nerf_mesh nerf.mesh cpu table sphere random_closed)
