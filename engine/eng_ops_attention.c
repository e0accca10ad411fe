/* eng_ops_attention.c: scaled dot-product attention: the tensor-level op (checks, dispatch) and
 * its CPU twin.
 *
 *   q (B, Lq, H, D), k and v (B, Lk, H, D) -> o (B, Lq, H, D), per batch b and head h:
 *   O = softmax(scale Q K^T + mask) V, mask = -inf for key j > i + (Lk - Lq) when causal.
 *
 * The twin never forms the Lq x Lk score matrix. Work is split into tasks of one (b, h, tile of
 * ATT_QT queries); a task walks the keys in tiles of ATT_KT with an online softmax (running max m
 * and running sum l per query row; Milakov & Gimelshein 2018, as flash attention does):
 *   S = scale Qt Kt^T                      (sgemm, f32)
 *   m' = max(m, rowmax S), P = exp(S - m'), l = l e^(m - m') + rowsum P
 *   O = O e^(m - m') + P Vt                (sgemm, f32)
 * and at the end O / l. Masked keys get P = 0. A query whose every key is masked (causal with
 * Lq > Lk: queries i < Lq - Lk) has l = 0 and its output is 0, where PyTorch would give NaN.
 * Each task gathers its Q tile and each K/V tile into contiguous buffers (any b/l/h strides, the
 * d dimension contiguous), so the cost of the strides is one copy per tile: 2 Lk d floats per
 * ATT_QT queries against 4 ATT_QT Lk d flops.
 *
 * Workspace: one slot of tiles per concurrent piece of work (2 per pool thread, at most one per
 * task), about 4 (ATT_QT + ATT_KT) d + ATT_QT ATT_KT floats each (~150 KiB at d = 64), from the
 * stream's arena when it has one (marked and rewound) and from the C heap otherwise, so the twin
 * also runs on a bare stream or NULL. Results do not depend on the number of threads: every task
 * does the same arithmetic in the same order whichever slot runs it. */
#include "eng_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_sched.h"

/* Query rows per task and key rows per tile: S is ATT_QT x ATT_KT floats (32 KiB, in L1/L2),
 * big enough that OpenBLAS runs its packed kernels. */
enum { ATT_QT = 64, ATT_KT = 128, ATT_SLOTS_PER_THREAD = 2 };

/* ---- the CPU twin --------------------------------------------------------------------------- */

typedef struct att_job {
    const eng_attention_args *a;
    int64_t nqt;    /* query tiles per (b, h) */
    int64_t ntasks; /* batch * heads * nqt */
    int64_t nslots; /* workspace slots; slot s runs tasks s, s + nslots, ... */
    size_t slot_floats;
    float *ws; /* nslots * slot_floats */
} att_job;

/* One task: query rows [i0, i1) of (b, h). ws: the slot's tiles. */
static void
att_task(const eng_attention_args *a, int64_t b, int64_t h, int64_t i0, int64_t i1, float *ws) {
    const int64_t d = a->d, lk = a->lk, off = a->lk - a->lq; /* causal: key j <= i + off */
    const int64_t nq = i1 - i0;
    float *qs = ws;                       /* (ATT_QT, d) */
    float *ks = qs + (size_t)ATT_QT * d;  /* (ATT_KT, d) */
    float *vs = ks + (size_t)ATT_KT * d;  /* (ATT_KT, d) */
    float *acc = vs + (size_t)ATT_KT * d; /* (ATT_QT, d) unnormalised O */
    float *sp = acc + (size_t)ATT_QT * d; /* (ATT_QT, ATT_KT) scores, then probabilities */
    float *mrow = sp + ATT_QT * ATT_KT;   /* (ATT_QT) running max of the scaled scores */
    float *lrow = mrow + ATT_QT;          /* (ATT_QT) running sum (f32; the sgemm sums are f32) */
    const float *q = a->q, *k = a->k, *v = a->v;
    float *o = a->o;
    const float *qb = q + b * a->q_stride[0] + h * a->q_stride[2];
    const float *kb = k + b * a->k_stride[0] + h * a->k_stride[2];
    const float *vb = v + b * a->v_stride[0] + h * a->v_stride[2];
    float *ob = o + b * a->o_stride[0] + h * a->o_stride[2];

    /* Keys any row of this tile may see: [0, kend). */
    int64_t kend = lk;
    if (a->causal && i1 + off < kend) kend = i1 + off;

    for (int64_t r = 0; r < nq; r++) {
        memcpy(qs + r * d, qb + (i0 + r) * a->q_stride[1], (size_t)d * sizeof(float));
        memset(acc + r * d, 0, (size_t)d * sizeof(float));
        mrow[r] = -INFINITY;
        lrow[r] = 0.0f;
    }
    for (int64_t j0 = 0; j0 < kend; j0 += ATT_KT) {
        const int64_t nk = kend - j0 < ATT_KT ? kend - j0 : ATT_KT;
        for (int64_t c = 0; c < nk; c++) {
            memcpy(ks + c * d, kb + (j0 + c) * a->k_stride[1], (size_t)d * sizeof(float));
            memcpy(vs + c * d, vb + (j0 + c) * a->v_stride[1], (size_t)d * sizeof(float));
        }
        /* S (nq, nk) = scale Qt Kt^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)nk, (blasint)d,
                    a->scale, qs, (blasint)d, ks, (blasint)d, 0.0f, sp, ATT_KT);
        for (int64_t r = 0; r < nq; r++) {
            float *srow = sp + r * ATT_KT;
            /* keys [j0, j0 + na) are visible to query i0 + r */
            int64_t na = nk;
            if (a->causal && i0 + r + off + 1 - j0 < na) na = i0 + r + off + 1 - j0;
            if (na <= 0) { /* nothing visible in this tile: P = 0, m and l unchanged */
                memset(srow, 0, (size_t)nk * sizeof(float));
                continue;
            }
            float mx = srow[0];
            for (int64_t c = 1; c < na; c++)
                mx = srow[c] > mx ? srow[c] : mx;
            const float mnew = mx > mrow[r] ? mx : mrow[r];
            /* mnew is finite unless the scores are +-inf/NaN; e^(m - mnew) is 0 on the first
             * visible tile (m = -inf) */
            const float alpha = expf(mrow[r] - mnew);
            float sum = 0.0f;
            for (int64_t c = 0; c < na; c++) {
                srow[c] = expf(srow[c] - mnew);
                sum += srow[c];
            }
            for (int64_t c = na; c < nk; c++)
                srow[c] = 0.0f;
            lrow[r] = lrow[r] * alpha + sum;
            mrow[r] = mnew;
            if (alpha != 1.0f) {
                float *arow = acc + r * d;
                for (int64_t c = 0; c < d; c++)
                    arow[c] *= alpha;
            }
        }
        /* O (nq, d) += P (nq, nk) Vt (nk, d) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)nq, (blasint)d, (blasint)nk,
                    1.0f, sp, ATT_KT, vs, (blasint)d, 1.0f, acc, (blasint)d);
    }
    for (int64_t r = 0; r < nq; r++) {
        float *orow = ob + (i0 + r) * a->o_stride[1];
        const float inv = lrow[r] > 0.0f ? 1.0f / lrow[r] : 0.0f; /* fully masked row: 0 */
        for (int64_t c = 0; c < d; c++)
            orow[c] = acc[r * d + c] * inv;
    }
}

/* Slots [begin, end): slot s runs tasks s, s + nslots, ... (strided, so causal tiles of every
 * cost spread over the slots). */
static void att_slots(void *user, int64_t begin, int64_t end) {
    const att_job *job = user;
    const eng_attention_args *a = job->a;
    for (int64_t slot = begin; slot < end; slot++) {
        float *ws = job->ws + (size_t)slot * job->slot_floats;
        for (int64_t t = slot; t < job->ntasks; t += job->nslots) {
            const int64_t bh = t / job->nqt, qt = t % job->nqt;
            const int64_t i0 = qt * ATT_QT;
            const int64_t i1 = i0 + ATT_QT < a->lq ? i0 + ATT_QT : a->lq;
            att_task(a, bh / a->heads, bh % a->heads, i0, i1, ws);
        }
    }
}

int eng_cpu_attention(eng_stream *s, const eng_attention_args *a, eng_err *err) {
    static const char fn[] = "eng_cpu_attention";
    const int64_t blas_max = 0x7fffffff;
    eng_arena *ar = s != NULL ? s->arena : NULL;
    eng_arena_pos pos = {0, 0, 0};
    void *heap = NULL, *mem = NULL;
    att_job job;
    int rc = ENG_OK;
    ENG_ASSERT(a != NULL);
    if (a->dtype != ENG_DTYPE_F32) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: the CPU twin takes f32, not %s", fn,
                           eng_dtype_name(a->dtype));
    }
    if (a->batch < 0 || a->heads < 0 || a->lq < 0 || a->lk < 0 || a->d < 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: batch %lld, heads %lld, lq %lld, lk %lld, d %lld (need d >= 1, "
                           "the others >= 0)",
                           fn, (long long)a->batch, (long long)a->heads, (long long)a->lq,
                           (long long)a->lk, (long long)a->d);
    }
    if (a->batch == 0 || a->heads == 0 || a->lq == 0) return ENG_OK;
    if (a->lk == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: lk = 0: %lld queries have no key to attend to", fn,
                           (long long)a->lq);
    }
    if (a->q == NULL || a->k == NULL || a->v == NULL || a->o == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: NULL %s", fn,
                           a->q == NULL   ? "q"
                           : a->k == NULL ? "k"
                           : a->v == NULL ? "v"
                                          : "o");
    }
    if (a->d > blas_max / ATT_KT) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: head dimension %lld is too large", fn,
                           (long long)a->d);
    }
    (void)eng_cpu_blas_describe(); /* OpenBLAS told to use one thread: the pool splits the work */

    job.a = a;
    job.nqt = (a->lq + ATT_QT - 1) / ATT_QT;
    job.ntasks = a->batch * a->heads * job.nqt;
    job.nslots = (int64_t)eng_pool_threads(s != NULL ? s->pool : NULL) * ATT_SLOTS_PER_THREAD;
    if (job.nslots > job.ntasks) job.nslots = job.ntasks;
    /* Qt, Kt, Vt, O, S, m, l; rounded to 16 floats so every slot starts 64-byte aligned. */
    job.slot_floats =
        (size_t)(2 * ATT_QT + 2 * ATT_KT) * (size_t)a->d + (size_t)ATT_QT * ATT_KT + 2 * ATT_QT;
    job.slot_floats = (job.slot_floats + 15) / 16 * 16;
    const size_t bytes = job.slot_floats * sizeof(float) * (size_t)job.nslots;
    if (ar != NULL) {
        pos = eng_arena_mark(ar);
        if ((rc = eng_arena_take(ar, &mem, bytes, err)) != ENG_OK) goto done;
    } else {
        heap = malloc(bytes);
        if (heap == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "%s: no memory for a %zu-byte workspace", fn, bytes);
            goto done;
        }
        mem = heap;
    }
    job.ws = mem;
    eng_pool_parallel_for(s != NULL ? s->pool : NULL, job.nslots, 1, att_slots, &job);
done:
    if (ar != NULL) eng_arena_rewind(ar, pos);
    free(heap);
    return rc;
}

/* ---- the op --------------------------------------------------------------------------------- */

/* Byte range [lo, hi) that a tensor's elements span (strides checked non-negative). */
static void att_span(const eng_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t last = 0;
    for (int i = 0; i < t->ndim; i++)
        last += (t->shape[i] - 1) * t->stride[i];
    *lo = (uintptr_t)t->data;
    *hi = *lo + (uintptr_t)((last + 1) * (int64_t)eng_dtype_size(t->dtype));
}

/* 1 when no two elements of t share memory: sorted by stride, each dimension steps past
 * everything the smaller ones span (sufficient, and true of every view eng_tensor makes). */
static int att_no_self_overlap(const eng_tensor *t) {
    int64_t st[ENG_MAX_DIMS], ex[ENG_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] <= 1) continue;
        int j = n++;
        while (j > 0 && st[j - 1] > t->stride[i]) { /* insertion sort, ascending stride */
            st[j] = st[j - 1];
            ex[j] = ex[j - 1];
            j--;
        }
        st[j] = t->stride[i];
        ex[j] = t->shape[i];
    }
    int64_t span = 1; /* elements covered by the dimensions so far */
    for (int i = 0; i < n; i++) {
        if (st[i] < span) return 0;
        span = st[i] * (ex[i] - 1) + span;
    }
    return 1;
}

static int att_check_tensor(const char *fn, const eng_tensor *t, const char *name, eng_err *err) {
    char d[96];
    if (t->ndim != 4) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: %s is %s, expected 4-D (B, L, H, D)", fn,
                           name, eng_tensor_describe(t, d, sizeof d));
    }
    for (int i = 0; i < 4; i++) {
        if (t->stride[i] < 0) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s (%s) has a negative stride in dimension %d", fn, name,
                               eng_tensor_describe(t, d, sizeof d), i);
        }
    }
    if (t->shape[3] > 1 && t->stride[3] != 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: %s (%s) has stride %lld along D; the head dimension must be "
                           "contiguous (stride 1)",
                           fn, name, eng_tensor_describe(t, d, sizeof d), (long long)t->stride[3]);
    }
    return ENG_OK;
}

int eng_op_attention(eng_ctx *ctx,
                     eng_stream *s,
                     eng_tensor *o,
                     const eng_tensor *q,
                     const eng_tensor *k,
                     const eng_tensor *v,
                     float scale,
                     int causal,
                     eng_err *err) {
    static const char fn[] = "eng_op_attention";
    const eng_tensor *all[4] = {o, q, k, v};
    const char *names[4] = {"o", "q", "k", "v"};
    char d0[96], d1[96], d2[96];
    eng_attention_args a;
    int rc;
    ENG_ASSERT(ctx != NULL && o != NULL && q != NULL && k != NULL && v != NULL);
    for (int i = 0; i < 4; i++) {
        if ((rc = att_check_tensor(fn, all[i], names[i], err)) != ENG_OK) return rc;
    }
    for (int i = 0; i < 3; i++) {
        if (all[i]->dtype != v->dtype || all[i]->device != v->device) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "%s: %s is %s but v is %s (one dtype and device for all four)", fn,
                               names[i], eng_tensor_describe(all[i], d0, sizeof d0),
                               eng_tensor_describe(v, d1, sizeof d1));
        }
    }
    if (!eng_tensor_same_shape(o, q)) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: o is %s but q is %s (must be equal)", fn,
                           eng_tensor_describe(o, d0, sizeof d0),
                           eng_tensor_describe(q, d1, sizeof d1));
    }
    if (!eng_tensor_same_shape(k, v) || k->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] ||
        k->shape[3] != q->shape[3]) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: q is %s, k is %s, v is %s: expected q (B, Lq, H, D) and k, v "
                           "(B, Lk, H, D)",
                           fn, eng_tensor_describe(q, d0, sizeof d0),
                           eng_tensor_describe(k, d1, sizeof d1),
                           eng_tensor_describe(v, d2, sizeof d2));
    }
    if (q->shape[1] < 1 || k->shape[1] < 1 || q->shape[3] < 1) {
        return eng_err_set(
            err, ENG_E_INVALID_ARG, "%s: q is %s, k is %s: Lq, Lk and D must be at least 1", fn,
            eng_tensor_describe(q, d0, sizeof d0), eng_tensor_describe(k, d1, sizeof d1));
    }
    if (eng_tensor_numel(o) == 0) return ENG_OK; /* B or H is 0 */
    if (o->data == NULL || q->data == NULL || k->data == NULL || v->data == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: a tensor without data", fn);
    }
    if (!att_no_self_overlap(o)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "%s: o (%s) has strides %lld,%lld,%lld,%lld under which elements "
                           "overlap",
                           fn, eng_tensor_describe(o, d0, sizeof d0), (long long)o->stride[0],
                           (long long)o->stride[1], (long long)o->stride[2],
                           (long long)o->stride[3]);
    }
    {
        uintptr_t olo, ohi, lo, hi;
        att_span(o, &olo, &ohi);
        for (int i = 1; i < 4; i++) {
            att_span(all[i], &lo, &hi);
            if (olo < hi && lo < ohi) {
                return eng_err_set(err, ENG_E_INVALID_ARG,
                                   "%s: o overlaps %s in memory (the output must not alias an "
                                   "input)",
                                   fn, names[i]);
            }
        }
    }
    if (s == NULL) s = eng_ctx_stream(ctx, o->device);
    if (s == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: no %s device is attached to the context",
                           fn, eng_device_name(o->device));
    }
    if (s->device != o->device) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "%s: a %s stream for %s tensors", fn,
                           eng_device_name(s->device), eng_device_name(o->device));
    }

    memset(&a, 0, sizeof a);
    a.dtype = o->dtype;
    a.o = o->data;
    a.q = q->data;
    a.k = k->data;
    a.v = v->data;
    a.batch = q->shape[0];
    a.lq = q->shape[1];
    a.heads = q->shape[2];
    a.d = q->shape[3];
    a.lk = k->shape[1];
    for (int i = 0; i < 3; i++) {
        a.q_stride[i] = q->stride[i];
        a.k_stride[i] = k->stride[i];
        a.v_stride[i] = v->stride[i];
        a.o_stride[i] = o->stride[i];
    }
    a.scale = scale;
    a.causal = causal != 0;

    if (o->device == ENG_DEVICE_CPU) {
        if (a.dtype != ENG_DTYPE_F32) {
            return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: the CPU backend takes f32, o is %s", fn,
                               eng_tensor_describe(o, d0, sizeof d0));
        }
        return eng_cpu_attention(s, &a, err);
    }
    const eng_backend *be = eng_ctx_backend(ctx, o->device);
    if (be == NULL || be->ops.attention == NULL) {
        return eng_err_set(err, ENG_E_UNSUPPORTED, "%s: not available for %s in this build", fn,
                           eng_tensor_describe(o, d0, sizeof d0));
    }
    return be->ops.attention(s, &a, err);
}
