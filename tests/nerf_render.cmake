# nerf/nerf_render + nerf_occgrid: marching, compositing (forward vs double, backward vs finite
# differences), the occupancy grid's update.
eng_test_exe(test_nerf_render test_nerf_render.c)
target_link_libraries(test_nerf_render PRIVATE nerf_lib)
eng_test_cases(test_nerf_render nerf.render cpu
  ray_box march_uniform march_grid composite composite_backward)
eng_test_cases(test_nerf_render nerf.occgrid cpu occgrid_update)
