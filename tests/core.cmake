# Core engine: tensors, ops and their CPU twins, the context, the CLI tools, header hygiene.
eng_test_exe(test_eng_tensor test_eng_tensor.c)
eng_test_cases(test_eng_tensor eng.tensor cpu init_strides init_errors views alloc_and_scratch)

eng_test_exe(test_eng_ops test_eng_ops.c)
eng_test_cases(test_eng_ops eng.ops cpu add gemm gemm_errors fill_dispatch no_device)

eng_test_exe(test_eng_ctx test_eng_ctx.c)
eng_test_cases(test_eng_ctx eng.ctx cpu env budget job_on_ctx cli_parse)

# The tools: --version names the engine and the backends; bad input exits 2 with a reason.
foreach(tool gen nerf)
  add_test(NAME ${tool}.cli.version COMMAND ${tool} --version)
  set_tests_properties(${tool}.cli.version PROPERTIES LABELS cpu
    PASS_REGULAR_EXPRESSION "${tool} [0-9]+\\.[0-9]+\\.[0-9]+ .*cpu: [0-9]+ threads, OpenBLAS.*cuda")
  add_test(NAME ${tool}.cli.bad_command
    COMMAND ${CMAKE_COMMAND} -DCMD=$<TARGET_FILE:${tool}> -DARGS=--no-such-flag -DEXPECT_RC=2
            "-DEXPECT_ERR=--no-such-flag" -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/expect_fail.cmake)
  set_tests_properties(${tool}.cli.bad_command PROPERTIES LABELS cpu)
endforeach()

# Every public header compiles on its own, as C11 and as C++ (what nvcc sees).
file(GLOB ENG_PUBLIC_HEADERS ${CMAKE_SOURCE_DIR}/engine/*.h ${CMAKE_SOURCE_DIR}/cuda/*.h
     ${CMAKE_SOURCE_DIR}/tokenizer/*.h ${CMAKE_SOURCE_DIR}/weights/*.h
     ${CMAKE_SOURCE_DIR}/diffusion/*.h ${CMAKE_SOURCE_DIR}/nerf/*.h)
add_test(NAME eng.headers.standalone
  COMMAND ${CMAKE_COMMAND} "-DHEADERS=${ENG_PUBLIC_HEADERS}" -DCC=${CMAKE_C_COMPILER}
          "-DINCLUDES=${CMAKE_SOURCE_DIR}/engine;${CMAKE_BINARY_DIR}/engine;${CMAKE_SOURCE_DIR}/cuda;${CMAKE_SOURCE_DIR}/weights;${CMAKE_SOURCE_DIR}/tokenizer;${CMAKE_SOURCE_DIR}/diffusion"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/headers_standalone.cmake)
set_tests_properties(eng.headers.standalone PROPERTIES LABELS cpu TIMEOUT 300)
