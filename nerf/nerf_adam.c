/* nerf_adam.c: the CPU twin of instant-ngp's Adam: one elementwise pass over the flat buffer
 * (nerf_adam_math.h per element), with the bias correction c(t) looked up in a table. */
#include "nerf_adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The table covers t until beta^t is negligible for both betas (c(t) is 1.0f from there on),
 * at most this many steps; beyond it c(t) is computed directly. */
#define ADAM_MAX_TABLE (1 << 20)

struct nerf_adam {
    nerf_adam_params p;
    eng_alloc *alloc;
    eng_tensor m, v, t;
    float *corr; /* corr[t] = c(t) for 1 <= t < n_corr (host bookkeeping, malloc) */
    int64_t n_corr;
    int64_t steps;
};

void nerf_adam_params_init(nerf_adam_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->beta1 = 0.9f;
    p->beta2 = 0.99f;
    p->epsilon = 1e-15f;
    p->l2_reg = 1e-6f;
}

static int check_params(const nerf_adam_params *p, eng_err *err) {
    if (p->n_params < 1 || p->n_params > ENG_MAX_NUMEL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_adam_create: n_params = %lld, expected >= 1",
                           (long long)p->n_params);
    }
    if (p->n_matrix < 0 || p->n_matrix > p->n_params) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_adam_create: n_matrix = %lld, expected 0..n_params (%lld)",
                           (long long)p->n_matrix, (long long)p->n_params);
    }
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "nerf_adam_create: beta1 = %g, beta2 = %g, expected each in [0, 1)",
                           (double)p->beta1, (double)p->beta2);
    }
    if (!(p->epsilon >= 0.0f) || !isfinite(p->epsilon) || !(p->l2_reg >= 0.0f) ||
        !isfinite(p->l2_reg)) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG,
            "nerf_adam_create: epsilon = %g, l2_reg = %g, expected finite values >= 0",
            (double)p->epsilon, (double)p->l2_reg);
    }
    return ENG_OK;
}

typedef struct adam_job {
    nerf_adam *a;
    float *params;
    const float *grads;
    float lr;
} adam_job;

static void zero_range(void *user, int64_t begin, int64_t end) {
    nerf_adam *a = user;
    const size_t n = (size_t)(end - begin);
    memset((float *)a->m.data + begin, 0, n * sizeof(float));
    memset((float *)a->v.data + begin, 0, n * sizeof(float));
    memset((uint32_t *)a->t.data + begin, 0, n * sizeof(uint32_t));
}

void nerf_adam_reset(nerf_adam *a, eng_stream *s) {
    ENG_ASSERT(a != NULL);
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, a->p.n_params, 1 << 16, zero_range, a);
    a->steps = 0;
}

int nerf_adam_create(nerf_adam **out, eng_alloc *alloc, const nerf_adam_params *p, eng_err *err) {
    int rc = ENG_OK;
    nerf_adam *a = NULL;
    ENG_ASSERT(out != NULL && alloc != NULL && p != NULL);
    *out = NULL;
    if ((rc = check_params(p, err)) != ENG_OK) goto done;
    if (eng_alloc_device(alloc) != ENG_DEVICE_CPU) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "nerf_adam_create: the allocator is on %s; this optimizer runs on the CPU",
                         eng_alloc_device_name(alloc));
        goto done;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf_adam_create: out of memory");
        goto done;
    }
    a->p = *p;
    a->alloc = alloc;
    const int64_t shape[1] = {p->n_params};
    if ((rc = eng_tensor_alloc(&a->m, alloc, ENG_LIFE_STATE, "nerf.adam.m", ENG_DTYPE_F32, 1, shape,
                               err)) != ENG_OK ||
        (rc = eng_tensor_alloc(&a->v, alloc, ENG_LIFE_STATE, "nerf.adam.v", ENG_DTYPE_F32, 1, shape,
                               err)) != ENG_OK ||
        (rc = eng_tensor_alloc(&a->t, alloc, ENG_LIFE_STATE, "nerf.adam.t", ENG_DTYPE_I32, 1, shape,
                               err)) != ENG_OK) {
        eng_err_prefix(err, "nerf_adam_create");
        goto done;
    }
    /* table length: until beta^t < 2^-30 for both betas (then c(t) rounds to 1.0f) */
    const double bmax = p->beta1 > p->beta2 ? p->beta1 : p->beta2;
    int64_t n_corr = bmax > 0.0 ? (int64_t)ceil(-30.0 * log(2.0) / log(bmax)) + 2 : 2;
    if (n_corr > ADAM_MAX_TABLE) n_corr = ADAM_MAX_TABLE;
    a->corr = malloc((size_t)n_corr * sizeof(float));
    if (a->corr == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf_adam_create: out of memory (%lld-entry table)",
                         (long long)n_corr);
        goto done;
    }
    a->n_corr = n_corr;
    a->corr[0] = 0.0f; /* unused: t starts at 1 */
    for (int64_t t = 1; t < n_corr; t++)
        a->corr[t] = nerf_adam_correction(p->beta1, p->beta2, (uint32_t)t);
    nerf_adam_reset(a, NULL);
    *out = a;
    a = NULL;
done:
    nerf_adam_destroy(a);
    return rc;
}

void nerf_adam_destroy(nerf_adam *a) {
    if (a == NULL) return;
    if (a->m.data != NULL) eng_tensor_free(a->alloc, &a->m);
    if (a->v.data != NULL) eng_tensor_free(a->alloc, &a->v);
    if (a->t.data != NULL) eng_tensor_free(a->alloc, &a->t);
    free(a->corr);
    free(a);
}

static void step_range(void *user, int64_t begin, int64_t end) {
    const adam_job *j = user;
    const nerf_adam *a = j->a;
    const nerf_adam_hyper h = {a->p.beta1, a->p.beta2, a->p.epsilon, a->p.l2_reg};
    float *m = a->m.data, *v = a->v.data;
    uint32_t *t = a->t.data;
    for (int64_t i = begin; i < end; i++) {
        const float g = j->grads[i];
        const int matrix = i < a->p.n_matrix;
        if (!matrix && g == 0.0f) continue;
        const uint32_t ti = ++t[i];
        const float corr = (int64_t)ti < a->n_corr
                               ? a->corr[ti]
                               : nerf_adam_correction(a->p.beta1, a->p.beta2, ti);
        nerf_adam_update(&j->params[i], &m[i], &v[i], g, j->lr, corr, &h, matrix);
    }
}

int nerf_adam_step(
    nerf_adam *a, eng_stream *s, float *params, const float *grads, float lr, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(a != NULL && params != NULL && grads != NULL);
    if (!(lr >= 0.0f) || !isfinite(lr)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "nerf_adam_step: learning rate %g, expected a finite value >= 0",
                         (double)lr);
        goto done;
    }
    adam_job j = {a, params, grads, lr};
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, a->p.n_params, 1 << 14, step_range, &j);
    a->steps++;
done:
    return rc;
}

const nerf_adam_params *nerf_adam_get_params(const nerf_adam *a) {
    ENG_ASSERT(a != NULL);
    return &a->p;
}

int64_t nerf_adam_step_count(const nerf_adam *a) {
    ENG_ASSERT(a != NULL);
    return a->steps;
}

void nerf_adam_set_step_count(nerf_adam *a, int64_t steps) {
    ENG_ASSERT(a != NULL && steps >= 0);
    a->steps = steps;
}

eng_tensor *nerf_adam_first_moment(nerf_adam *a) {
    ENG_ASSERT(a != NULL);
    return &a->m;
}

eng_tensor *nerf_adam_second_moment(nerf_adam *a) {
    ENG_ASSERT(a != NULL);
    return &a->v;
}

eng_tensor *nerf_adam_param_steps(nerf_adam *a) {
    ENG_ASSERT(a != NULL);
    return &a->t;
}
