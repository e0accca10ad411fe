/* eng_ctx.c: the context: one allocator per device, one scheduler over one pool, the backends. */
#include "eng_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_ops.h"

struct eng_ctx {
    eng_ctx_params params;
    eng_pool *pool;
    eng_sched *sched;
    eng_alloc *alloc[ENG_DEVICE_COUNT];
    eng_backend *backend[ENG_DEVICE_COUNT]; /* NULL for the CPU */
    eng_stream stream[ENG_DEVICE_COUNT];    /* default streams */
    int has_stream[ENG_DEVICE_COUNT];
    char device_name[ENG_DEVICE_COUNT][32]; /* "cuda:0": the allocators borrow these */
};

void eng_ctx_params_init(eng_ctx_params *p) {
    memset(p, 0, sizeof *p);
    p->threaded_scheduler = 1;
    p->logger.min_level = ENG_LOG_INFO;
}

int eng_ctx_params_from_env(eng_ctx_params *p, eng_err *err) {
    const char *v;
    int rc;
    if ((v = getenv("ENG_THREADS")) != NULL && v[0] != '\0') {
        char *end = NULL;
        const long t = strtol(v, &end, 10);
        if (end == v || *end != '\0' || t < 1 || t > 1024) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "ENG_THREADS=\"%s\": expected a thread count from 1 to 1024", v);
        }
        p->threads = (int)t;
    }
    if ((v = getenv("ENG_MEMORY_BUDGET")) != NULL && v[0] != '\0') {
        if ((rc = eng_bytes_parse(&p->cpu_budget_bytes, v, err)) != ENG_OK) {
            eng_err_prefix(err, "ENG_MEMORY_BUDGET");
            return rc;
        }
    }
    if ((v = getenv("ENG_GPU_MEMORY_BUDGET")) != NULL && v[0] != '\0') {
        if ((rc = eng_bytes_parse(&p->gpu_budget_bytes, v, err)) != ENG_OK) {
            eng_err_prefix(err, "ENG_GPU_MEMORY_BUDGET");
            return rc;
        }
    }
    return ENG_OK;
}

int eng_ctx_create(eng_ctx **out, const eng_ctx_params *params, eng_err *err) {
    eng_ctx *ctx = NULL;
    eng_ctx_params defaults;
    eng_alloc_params ap;
    eng_sched_params sp;
    int rc = ENG_OK;
    ENG_ASSERT(out != NULL);
    *out = NULL;
    if (params == NULL) {
        eng_ctx_params_init(&defaults);
        params = &defaults;
    }
    if ((ctx = calloc(1, sizeof *ctx)) == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "eng_ctx_create: out of host memory");
        goto done;
    }
    ctx->params = *params;
    if ((rc = eng_pool_create(&ctx->pool, params->threads, err)) != ENG_OK) goto done;
    eng_alloc_params_init(&ap);
    ap.device = ENG_DEVICE_CPU;
    ap.budget_bytes = params->cpu_budget_bytes;
    if ((rc = eng_alloc_create(&ctx->alloc[ENG_DEVICE_CPU], &ap, err)) != ENG_OK) goto done;
    eng_sched_params_init(&sp);
    sp.pool = ctx->pool;
    sp.cpu_alloc = ctx->alloc[ENG_DEVICE_CPU];
    sp.threaded = params->threaded_scheduler;
    if ((rc = eng_sched_create(&ctx->sched, &sp, err)) != ENG_OK) goto done;
    ctx->stream[ENG_DEVICE_CPU].device = ENG_DEVICE_CPU;
    ctx->stream[ENG_DEVICE_CPU].pool = ctx->pool;
    ctx->stream[ENG_DEVICE_CPU].arena = eng_alloc_scratch(ctx->alloc[ENG_DEVICE_CPU]);
    ctx->has_stream[ENG_DEVICE_CPU] = 1;
    *out = ctx;
    ctx = NULL;
done:
    eng_ctx_destroy(ctx);
    return rc;
}

void eng_ctx_destroy(eng_ctx *ctx) {
    if (ctx == NULL) return;
    eng_sched_destroy(ctx->sched); /* jobs hold arenas and streams: they go first */
    for (int d = ENG_DEVICE_COUNT - 1; d >= 0; d--) {
        eng_backend *b = ctx->backend[d];
        if (b != NULL && ctx->has_stream[d] && b->stream_destroy != NULL) {
            b->stream_destroy(b->impl, &ctx->stream[d]);
        }
        eng_alloc_destroy(ctx->alloc[d]); /* gives blocks back through the backend */
        if (b != NULL && b->destroy != NULL) b->destroy(b->impl);
        free(b);
    }
    eng_pool_destroy(ctx->pool);
    free(ctx);
}

static int backend_block_take(void *user, void **out, size_t bytes, eng_err *err) {
    const eng_backend *b = user;
    return b->block_take(b->impl, out, bytes, err);
}

static void backend_block_give(void *user, void *block) {
    const eng_backend *b = user;
    b->block_give(b->impl, block);
}

int eng_ctx_attach_backend(eng_ctx *ctx,
                           eng_backend *backend,
                           uint64_t budget_bytes,
                           eng_err *err) {
    eng_alloc_params ap;
    eng_alloc *alloc = NULL;
    eng_stream stream;
    int rc = ENG_OK, have_stream = 0;
    ENG_ASSERT(ctx != NULL && backend != NULL);
    const eng_device_kind d = backend->device;
    if (d == ENG_DEVICE_CPU || (unsigned)d >= ENG_DEVICE_COUNT || ctx->backend[d] != NULL) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_ctx_attach_backend: a %s backend is attached already",
                         eng_device_name(d));
        goto done;
    }
    snprintf(ctx->device_name[d], sizeof ctx->device_name[d], "%s:%d", eng_device_name(d),
             backend->info.index);
    eng_alloc_params_init(&ap);
    ap.device = d;
    ap.budget_bytes = budget_bytes != 0 ? budget_bytes : ctx->params.gpu_budget_bytes;
    ap.block_bytes = 256u << 20; /* cudaMalloc is slow: few, large blocks */
    ap.source.device_name = ctx->device_name[d];
    ap.source.user = backend;
    ap.source.take = backend_block_take;
    ap.source.give = backend_block_give;
    if ((rc = eng_alloc_create(&alloc, &ap, err)) != ENG_OK) goto done;
    memset(&stream, 0, sizeof stream);
    if ((rc = backend->stream_create(backend->impl, &stream, 0, err)) != ENG_OK) goto done;
    have_stream = 1;
    stream.arena = eng_alloc_scratch(alloc);
    ctx->backend[d] = backend;
    ctx->alloc[d] = alloc;
    ctx->stream[d] = stream;
    ctx->has_stream[d] = 1;
    eng_sched_set_device(ctx->sched, d, alloc, backend);
    backend = NULL;
    alloc = NULL;
    have_stream = 0;
done:
    if (have_stream) backend->stream_destroy(backend->impl, &stream);
    eng_alloc_destroy(alloc);
    if (backend != NULL) {
        if (backend->destroy != NULL) backend->destroy(backend->impl);
        free(backend);
    }
    return rc;
}

eng_pool *eng_ctx_pool(eng_ctx *ctx) {
    return ctx->pool;
}

eng_sched *eng_ctx_sched(eng_ctx *ctx) {
    return ctx->sched;
}

eng_alloc *eng_ctx_alloc(eng_ctx *ctx, eng_device_kind device) {
    return (unsigned)device < ENG_DEVICE_COUNT ? ctx->alloc[device] : NULL;
}

const eng_backend *eng_ctx_backend(const eng_ctx *ctx, eng_device_kind device) {
    return (unsigned)device < ENG_DEVICE_COUNT ? ctx->backend[device] : NULL;
}

eng_stream *eng_ctx_stream(eng_ctx *ctx, eng_device_kind device) {
    if ((unsigned)device >= ENG_DEVICE_COUNT || !ctx->has_stream[device]) return NULL;
    return &ctx->stream[device];
}

const eng_logger *eng_ctx_logger(const eng_ctx *ctx) {
    return &ctx->params.logger;
}

int eng_ctx_threads(const eng_ctx *ctx) {
    return eng_pool_threads(ctx->pool);
}

char *eng_ctx_describe(const eng_ctx *ctx, char *buf, size_t n) {
    char budget[32];
    size_t used;
    eng_alloc_stats st;
    eng_alloc_get_stats(ctx->alloc[ENG_DEVICE_CPU], &st);
    snprintf(buf, n, "cpu: %d threads, %s, memory budget %s\n", eng_pool_threads(ctx->pool),
             eng_cpu_blas_describe(),
             st.budget ? eng_bytes_format(budget, sizeof budget, st.budget) : "none");
    for (int d = 0; d < ENG_DEVICE_COUNT; d++) {
        const eng_backend *b = ctx->backend[d];
        if (b == NULL) continue;
        used = strlen(buf);
        if (used + 1 >= n) break;
        snprintf(buf + used, n - used, "%s:%d: %s (sm_%d%d, %d SMs, %s)\n", eng_device_name(d),
                 b->info.index, b->info.name, b->info.cc_major, b->info.cc_minor, b->info.sm_count,
                 eng_bytes_format(budget, sizeof budget, b->info.total_bytes));
    }
    return buf;
}
