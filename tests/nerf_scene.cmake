# nerf/nerf_scene: the procedural scene of `nerf demo` (analytic shapes ray-traced into a
# NeRF-synthetic dataset): intersections, shading, camera rig, renderer, JSON + PNG writer.
eng_test_exe(test_nerf_scene test_nerf_scene.c)
target_link_libraries(test_nerf_scene PRIVATE nerf_lib PkgConfig::CJSON)
eng_test_cases(test_nerf_scene nerf.scene cpu determinism coverage centre_hit box_faces
               json_roundtrip camera_rig supersample_edges pool_vs_single occupancy errors
               write_time)
