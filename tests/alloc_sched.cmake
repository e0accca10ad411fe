# The allocator (eng.alloc.*) and the scheduler with its thread pool (eng.sched.*).
eng_test_exe(test_eng_alloc test_eng_alloc.c)
eng_test_cases(test_eng_alloc eng.alloc cpu
  lifetimes reuse_coalesce alignment dedicated_block budget_exceeded peak owners_sorted
  arena_same_addresses arena_merge arena_destroy arena_mark_rewind stress bytes_parse bytes_format
  fake_source source_failure scratch_default bad_args threads)

eng_test_exe(test_eng_sched test_eng_sched.c)
eng_test_cases(test_eng_sched eng.sched cpu
  pool_cover pool_nested priority_interleave preempt_queued cancel_frees_scratch
  cancel_in_slice slice_error threaded_wait threaded_preempt destroy_queued release_unfinished
  device_not_attached)
