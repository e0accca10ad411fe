/* nerf_sh.c: the CPU twin of the spherical-harmonics encoding (nerf_sh_math.h per row). */
#include "nerf_sh.h"

typedef struct sh_job {
    float *out;
    int64_t ld;
    const float *dirs;
} sh_job;

static void sh_range(void *user, int64_t begin, int64_t end) {
    const sh_job *j = user;
    for (int64_t i = begin; i < end; i++)
        nerf_sh4(j->dirs + 3 * i, j->out + i * j->ld);
}

int nerf_sh_encode(
    eng_stream *s, float *out, int64_t ld_out, const float *dirs, int64_t n, eng_err *err) {
    int rc = ENG_OK;
    if (n < 0 || ld_out < NERF_SH_COEFFS) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_sh_encode: n = %lld, ld_out = %lld (expected n >= 0, ld_out >= %d)",
                         (long long)n, (long long)ld_out, NERF_SH_COEFFS);
        goto done;
    }
    if (n == 0) goto done;
    ENG_ASSERT(out != NULL && dirs != NULL);
    sh_job j = {out, ld_out, dirs};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, n, 4096, sh_range, &j);
done:
    return rc;
}
