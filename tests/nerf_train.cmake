# nerf/nerf_train and the nerf command: training on the built-in scene reaches a PSNR bound,
# resuming gives the same parameters as an unbroken run, snapshot errors; an unbounded scene (the
# built-in objects under a sky) trains better with the scene contraction than without, whose
# flag survives snapshots; a short `nerf demo`.
eng_test_exe(test_nerf_train test_nerf_train.c)
target_link_libraries(test_nerf_train PRIVATE nerf_lib)
eng_test_cases(test_nerf_train nerf.train cpu converges resume snapshot_errors contract_converges
  contract_snapshot)
set_tests_properties(nerf.train.converges nerf.train.resume nerf.train.contract_converges
  PROPERTIES TIMEOUT 600)
add_test(NAME nerf.cli.demo
  COMMAND sh -c "$<TARGET_FILE:nerf> demo --out \"$1\" --res 32 --steps 60 && test -s \"$1/mesh.ply\" && test -s \"$1/eval/metrics.json\" && test -s \"$1/turntable/frame_0035.png\" && $<TARGET_FILE:nerf> eval \"$1/demo.nerf\" --transforms \"$1/scene/transforms_test.json\"" sh ${CMAKE_CURRENT_BINARY_DIR}/nerf_cli_demo)
set_tests_properties(nerf.cli.demo PROPERTIES LABELS cpu TIMEOUT 600
  PASS_REGULAR_EXPRESSION "mean over 20 views: PSNR")
