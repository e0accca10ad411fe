# viewer/: the PLY reader, the mode hook (vw_run in-process), and the `viewer` command headless
# and in a window under Xvfb (SKIP without Xvfb), always with Vulkan validation on (a message
# fails the test), plus its error paths. Registered only when the viewer is built (ENG_VIEWER).
# Mesa's llvmpipe and the Vulkan loader keep some allocations until exit: LeakSanitizer is told
# to ignore leaks whose stacks are inside those libraries (tests/viewer_lsan.supp), nothing more.
if(ENG_VIEWER)
  eng_test_exe(test_viewer test_viewer.c)
  target_link_libraries(test_viewer PRIVATE viewer_lib nerf_lib)
  target_compile_definitions(test_viewer PRIVATE VW_TEST_VIEWER="$<TARGET_FILE:viewer>"
                             VW_TEST_NERF="$<TARGET_FILE:nerf>")
  add_dependencies(test_viewer viewer nerf)
  set(VW_TEST_CASES ply_ascii ply_nerf ply_errors ply_fuzz_cases hook_texture headless_image headless_mesh
      headless_depth headless_overlay window_image window_mesh headless_nerf window_nerf
      nerf_progressive window_nerf_live err_missing err_corrupt err_nerf
      err_flags err_no_display err_no_device)
  eng_test_cases(test_viewer viewer viewer ${VW_TEST_CASES})
  foreach(c ${VW_TEST_CASES})
    set_tests_properties(viewer.${c} PROPERTIES TIMEOUT 120 ENVIRONMENT
      "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/viewer_lsan.supp:print_suppressions=0")
  endforeach()
  # Every viewer header compiles alone as C11 and C++ (the engine's check, on viewer/).
  file(GLOB VW_PUBLIC_HEADERS ${CMAKE_SOURCE_DIR}/viewer/*.h)
  add_test(NAME viewer.headers.standalone
    COMMAND ${CMAKE_COMMAND} "-DHEADERS=${VW_PUBLIC_HEADERS}" -DCC=${CMAKE_C_COMPILER}
            "-DINCLUDES=${CMAKE_SOURCE_DIR}/engine;${CMAKE_BINARY_DIR}/engine;${CMAKE_SOURCE_DIR}/nerf;${CMAKE_SOURCE_DIR}/viewer"
            -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/headers_standalone.cmake)
  set_tests_properties(viewer.headers.standalone PROPERTIES LABELS "viewer" TIMEOUT 120)

  # libFuzzer harness over the PLY reader (ENG_FUZZ=ON, clang):
  #   ./build-fuzz/tests/fuzz_ply -dict=tests/fuzz/ply.dict CORPUS tests/fuzz/seeds/ply
  if(ENG_FUZZ)
    add_executable(fuzz_ply fuzz/fuzz_ply.c)
    target_link_libraries(fuzz_ply PRIVATE viewer_lib m)
    target_compile_options(fuzz_ply PRIVATE -fsanitize=fuzzer,address,undefined -g)
    target_link_options(fuzz_ply PRIVATE -fsanitize=fuzzer,address,undefined)
    set_target_properties(fuzz_ply PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    eng_target_defaults(fuzz_ply)
  endif()
endif()
