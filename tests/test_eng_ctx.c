/* test_eng_ctx.c: the context (environment, budget, describe, a job on its scheduler) and the
 * CLI helpers. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "eng.h"
#include "eng_test.h"

static int test_env(void) {
    eng_ctx_params p;
    eng_err err = {0};
    eng_ctx_params_init(&p);
    setenv("ENG_THREADS", "3", 1);
    setenv("ENG_MEMORY_BUDGET", "64M", 1);
    CHECK_OK(eng_ctx_params_from_env(&p, &err), &err);
    CHECK_EQ_I64(p.threads, 3);
    CHECK_EQ_I64(p.cpu_budget_bytes, 64ull << 20);
    setenv("ENG_THREADS", "three", 1);
    CHECK(eng_ctx_params_from_env(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ENG_THREADS=\"three\"");
    setenv("ENG_THREADS", "2", 1);
    setenv("ENG_MEMORY_BUDGET", "lots", 1);
    CHECK(eng_ctx_params_from_env(&p, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "ENG_MEMORY_BUDGET");
    CHECK_CONTAINS(err.msg, "lots");
    unsetenv("ENG_THREADS");
    unsetenv("ENG_MEMORY_BUDGET");
    return 0;
}

/* The context's host budget caps what tensors may take; the error names owner and budget. */
static int test_budget(void) {
    eng_ctx_params p;
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_tensor a, b;
    const int64_t shape[1] = {3 << 20}; /* 12 MiB of f32 */
    char desc[512];
    eng_ctx_params_init(&p);
    p.threads = 1;
    p.cpu_budget_bytes = 16u << 20;
    CHECK_OK(eng_ctx_create(&ctx, &p, &err), &err);
    eng_alloc *al = eng_ctx_alloc(ctx, ENG_DEVICE_CPU);
    CHECK_OK(eng_tensor_alloc(&a, al, ENG_LIFE_STATE, "grid", ENG_DTYPE_F32, 1, shape, &err), &err);
    CHECK(eng_tensor_alloc(&b, al, ENG_LIFE_STATE, "mlp", ENG_DTYPE_F32, 1, shape, &err) ==
          ENG_E_OOM);
    CHECK_CONTAINS(err.msg, "mlp");
    CHECK_CONTAINS(err.msg, "budget");
    CHECK_CONTAINS(err.msg, "grid");
    eng_ctx_describe(ctx, desc, sizeof desc);
    CHECK_CONTAINS(desc, "cpu: 1 threads");
    CHECK_CONTAINS(desc, "OpenBLAS");
    CHECK_CONTAINS(desc, "memory budget 16.0 MiB");
    eng_tensor_free(al, &a);
    eng_ctx_destroy(ctx);
    return 0;
}

typedef struct counter_job {
    int steps, done;
    uint64_t arena_used;
} counter_job;

static int counter_slice(eng_job *job, void *user, eng_err *err) {
    counter_job *c = user;
    void *p = NULL;
    int rc = eng_arena_take(eng_job_arena(job), &p, 4096, err);
    if (rc != ENG_OK) return rc;
    c->arena_used = eng_arena_used(eng_job_arena(job));
    eng_arena_reset(eng_job_arena(job));
    CHECK(eng_job_stream(job)->device == ENG_DEVICE_CPU);
    return ++c->done < c->steps ? ENG_JOB_MORE : ENG_OK;
}

static int test_job_on_ctx(void) {
    eng_ctx *ctx = NULL;
    eng_err err = {0};
    eng_job_params jp;
    eng_job *job = NULL;
    counter_job c = {5, 0, 0};
    CHECK_OK(eng_ctx_create(&ctx, NULL, &err), &err); /* threaded scheduler by default */
    eng_job_params_init(&jp);
    jp.name = "counter";
    jp.slice = counter_slice;
    jp.user = &c;
    CHECK_OK(eng_sched_submit(eng_ctx_sched(ctx), &job, &jp, &err), &err);
    CHECK_OK(eng_job_wait(job, &err), &err);
    CHECK_EQ_I64(c.done, 5);
    CHECK_EQ_I64(eng_job_slices(job), 5);
    CHECK(c.arena_used >= 4096);
    eng_job_release(job);
    eng_ctx_destroy(ctx);
    return 0;
}

static int test_cli_parse(void) {
    eng_err err = {0};
    int64_t v = 0;
    double f = 0;
    CHECK_OK(eng_cli_parse_int(&v, "--steps", "20", 1, 1000, &err), &err);
    CHECK_EQ_I64(v, 20);
    CHECK(eng_cli_parse_int(&v, "--steps", "20x", 1, 1000, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "--steps: expected an integer from 1 to 1000, got \"20x\"");
    CHECK(eng_cli_parse_int(&v, "--steps", "0", 1, 1000, &err) == ENG_E_INVALID_ARG);
    CHECK_OK(eng_cli_parse_float(&f, "--cfg-scale", "7.5", 0, 100, &err), &err);
    CHECK(f == 7.5);
    CHECK(eng_cli_parse_float(&f, "--cfg-scale", "nan", 0, 100, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "--cfg-scale");
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"env", test_env},
        {"budget", test_budget},
        {"job_on_ctx", test_job_on_ctx},
        {"cli_parse", test_cli_parse},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
