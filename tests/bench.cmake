# `gen bench --ops`: CTest only checks that it runs (tiny shapes, one call each) and refuses bad
# requests; speed is measured by running the command itself (docs/benchmarks.md), never here.
add_test(NAME gen.bench.ops_smoke
  COMMAND sh -c "out=$(\"$0\" bench --ops --smoke) || { printf '%s\\n' \"$out\"; exit 1; }; printf '%s\\n' \"$out\"; printf '%s\\n' \"$out\" | grep -q '^gen bench --ops: gen '"
          $<TARGET_FILE:gen>)
set_tests_properties(gen.bench.ops_smoke PROPERTIES LABELS cpu TIMEOUT 300)

add_test(NAME gen.bench.cpu_dtype
  COMMAND ${CMAKE_COMMAND} -DCMD=$<TARGET_FILE:gen> "-DARGS=bench --ops --dtype f16" -DEXPECT_RC=2
          "-DEXPECT_ERR=the CPU ops are f32 only" -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/expect_fail.cmake)
add_test(NAME gen.bench.bad_op
  COMMAND ${CMAKE_COMMAND} -DCMD=$<TARGET_FILE:gen> "-DARGS=bench --ops --op conv,nosuch" -DEXPECT_RC=2
          "-DEXPECT_ERR=unknown op \"nosuch\"" -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/expect_fail.cmake)
set_tests_properties(gen.bench.cpu_dtype gen.bench.bad_op PROPERTIES LABELS cpu)

# On CUDA: the smoke run on device 0; without a device, exit 2 naming why, shown as SKIP.
add_test(NAME gen.bench.cuda_smoke
  COMMAND sh -c "out=$(\"$0\" bench --ops --smoke --device cuda 2>&1); rc=$?; printf '%s\\n' \"$out\"; if [ $rc -eq 2 ] && printf '%s\\n' \"$out\" | grep -q -e 'no CUDA device' -e 'built without CUDA'; then exit 77; fi; exit $rc"
          $<TARGET_FILE:gen>)
set_tests_properties(gen.bench.cuda_smoke PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 300)

# The reusable benchmark helpers (engine/eng_bench.h): statistics, the timing loop, FLOP counts,
# the GPU peak estimate, the report rows. No timing thresholds.
eng_test_exe(test_eng_bench test_eng_bench.c)
eng_test_cases(test_eng_bench eng.bench cpu stats run flops gpu_peak copy_bandwidth row)
