# nerf/nerf_render + nerf_occgrid: marching, compositing (forward vs double, backward vs finite
# differences), the occupancy grid's update; the scene contraction (nerf_contract_math.h), the
# contracted march and the contracted grid.
eng_test_exe(test_nerf_render test_nerf_render.c)
target_link_libraries(test_nerf_render PRIVATE nerf_lib)
eng_test_cases(test_nerf_render nerf.render cpu
  ray_box march_uniform march_grid march_coarse composite composite_backward contract_math march_contract)
eng_test_cases(test_nerf_render nerf.occgrid cpu occgrid_update occgrid_contract)
