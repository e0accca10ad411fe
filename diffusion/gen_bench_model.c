/* gen_bench_model.c: `gen bench [-m MODEL] --res N --steps N --batch N`: times whole
 * generations with the pipeline (diffusion/sd_pipe.h) and reports UNet passes per second (each
 * pass a CFG batch of 2 per image), seconds per image end to end (text encoder + sampling + VAE
 * decode), the phases, and peak memory, over repeated runs with min and median. Without -m it
 * uses (and first writes, with a progress bar) a full-size random SD1.5 checkpoint in f16 in the
 * cache folder ($XDG_CACHE_HOME/engine, else ~/.cache/engine). */
#define _POSIX_C_SOURCE 200809L
#include "gen_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "eng.h"
#include "eng_bench.h"
#include "eng_cuda.h"
#include "gen_generate.h"
#include "sd_pipe.h"
#include "wt.h"

static const char usage[] =
    "usage: gen bench [-m MODEL] [--res N] [--steps N] [--batch N] [--runs N]\n"
    "                 [--sampling-method S] [--cfg-scale X] [--device cpu|cuda] [--threads N]\n"
    "                 [--dtype f16|f32|bf16] [--vocab PATH]\n"
    "\n"
    "Times whole generations (text encoder, sampling with classifier-free guidance, VAE decode)\n"
    "and prints, per run and as min / median over the runs: UNet it/s (one pass = one CFG batch\n"
    "of 2 per image), seconds per image end to end, each phase, and peak memory (the engine's\n"
    "allocator and the process's resident set).\n"
    "\n"
    "  -m, --model PATH   checkpoint (default: a full-size random SD1.5 in f16, written once to\n"
    "                     the cache folder: $XDG_CACHE_HOME/engine/sd15-random-f16.safetensors)\n"
    "  --res N            image side in pixels (default 512)\n"
    "  --steps N          sampling steps (default 20)\n"
    "  --batch N          images per run (default 1)\n"
    "  --runs N           timed runs (default 3); one untimed warm-up run comes first unless\n"
    "                     --no-warmup\n"
    "  --sampling-method S, --cfg-scale X, --device D, --dtype T, --threads N, --vocab PATH:\n"
    "                     as for gen\n";

static int default_model(char *out, size_t cap, eng_err *err) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[3000];
    struct stat st;
    if (xdg != NULL && xdg[0] != '\0') {
        snprintf(dir, sizeof dir, "%s/engine", xdg);
    } else if (home != NULL && home[0] != '\0') {
        snprintf(dir, sizeof dir, "%s/.cache", home);
        mkdir(dir, 0755);
        snprintf(dir, sizeof dir, "%s/.cache/engine", home);
    } else {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "gen bench: no cache folder (HOME unset): give -m MODEL");
    }
    mkdir(dir, 0755);
    snprintf(out, cap, "%s/sd15-random-f16.safetensors", dir);
    if (stat(out, &st) == 0) return ENG_OK;
    wt_make_params p;
    memset(&p, 0, sizeof p);
    int rc = wt_sd_config_preset(&p.config, "sd15", err);
    if (rc != ENG_OK) return rc;
    p.format = WT_FORMAT_LDM;
    p.dtype = ENG_DTYPE_F16;
    p.seed = 1;
    p.path = out;
    p.progress = stderr;
    fprintf(stderr, "gen bench: writing a random SD1.5 checkpoint to %s (once)\n", out);
    return wt_make_checkpoint(&p, err);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

int gen_bench_model_main(int argc, char **argv) {
    enum { MAX_RUNS = 100 };
    int status = 1, warmup = 1;
    eng_err err = {0};
    int64_t res = 512, steps = 20, batch = 1, runs = 3, threads = 0;
    double cfg = 7.0;
    const char *model = NULL, *sampler = "euler_a", *device = "cpu", *vocab_flag = NULL;
    int dtype = -1; /* sd_pipe_params.dtype: the device's default */
    char model_buf[4096], vocab[4096];
    eng_ctx *ctx = NULL;
    sd_pipe *pipe = NULL;
    double its[MAX_RUNS], secs[MAX_RUNS], text[MAX_RUNS], samp[MAX_RUNS], dec[MAX_RUNS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--no-warmup") == 0) {
            warmup = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gen bench: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int rc = ENG_OK;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            model = v;
        } else if (strcmp(a, "--res") == 0) {
            rc = eng_cli_parse_int(&res, a, v, 64, SD_PIPE_MAX_SIDE, &err);
        } else if (strcmp(a, "--steps") == 0) {
            rc = eng_cli_parse_int(&steps, a, v, 1, 1000, &err);
        } else if (strcmp(a, "--batch") == 0) {
            rc = eng_cli_parse_int(&batch, a, v, 1, SD_PIPE_MAX_BATCH, &err);
        } else if (strcmp(a, "--runs") == 0) {
            rc = eng_cli_parse_int(&runs, a, v, 1, MAX_RUNS, &err);
        } else if (strcmp(a, "--threads") == 0) {
            rc = eng_cli_parse_int(&threads, a, v, 1, 1024, &err);
        } else if (strcmp(a, "--cfg-scale") == 0) {
            rc = eng_cli_parse_float(&cfg, a, v, 0, 100, &err);
        } else if (strcmp(a, "--sampling-method") == 0) {
            sampler = v;
        } else if (strcmp(a, "--device") == 0) {
            device = v;
        } else if (strcmp(a, "--dtype") == 0) {
            eng_dtype dt = ENG_DTYPE_F32;
            if ((rc = eng_dtype_parse(&dt, v, &err)) == ENG_OK) dtype = (int)dt;
        } else if (strcmp(a, "--vocab") == 0) {
            vocab_flag = v;
        } else {
            fprintf(stderr, "gen bench: unknown option \"%s\" (gen bench --help)\n", a);
            return 2;
        }
        if (rc != ENG_OK) {
            fprintf(stderr, "gen bench: %s\n", err.msg);
            return 2;
        }
    }
    sd_gen_params g;
    sd_gen_params_init(&g);
    g.steps = (int)steps;
    g.cfg_scale = cfg;
    g.width = g.height = (int)res;
    g.batch = (int)batch;
    g.prompt = "a photograph of an astronaut riding a horse";
    g.progress = stderr;
    if (sd_sampler_parse(&g.sampler, sampler, &err) != ENG_OK) {
        fprintf(stderr, "gen bench: %s\n", err.msg);
        return 2;
    }
    sd_pipe_params pp;
    sd_pipe_params_init(&pp);
    if (strcmp(device, "cuda") == 0) {
        pp.device = ENG_DEVICE_CUDA;
    } else if (strcmp(device, "cpu") != 0) {
        fprintf(stderr, "gen bench: --device: \"%s\" is not cpu or cuda\n", device);
        return 2;
    }
    if (model == NULL) {
        if (default_model(model_buf, sizeof model_buf, &err) != ENG_OK) goto fail;
        model = model_buf;
    }
    pp.model = model;
    pp.dtype = dtype;
    if (gen_find_vocab(vocab, sizeof vocab, vocab_flag, model, &err) != ENG_OK) goto fail;
    pp.vocab = vocab[0] != '\0' ? vocab : NULL;

    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    if (eng_ctx_params_from_env(&cp, &err) != ENG_OK) goto fail;
    if (threads > 0) cp.threads = (int)threads;
    if (eng_ctx_create(&ctx, &cp, &err) != ENG_OK) goto fail;
    if (pp.device == ENG_DEVICE_CUDA && eng_cuda_attach(ctx, 0, 0, &err) != ENG_OK) goto fail;
    const double t0 = eng_bench_now_s();
    if (sd_pipe_load(&pipe, ctx, &pp, &err) != ENG_OK) goto fail;
    {
        char desc[1024];
        printf("gen bench: %s (%s), load %.1f s\n", model,
               wt_family_name(sd_pipe_config(pipe)->family), eng_bench_now_s() - t0);
        printf("%s", eng_ctx_describe(ctx, desc, sizeof desc));
        printf("%lldx%lld, %lld steps of %s, CFG %g, batch %lld, %d threads\n", (long long)res,
               (long long)res, (long long)steps, sd_sampler_name(g.sampler), cfg, (long long)batch,
               eng_ctx_threads(ctx));
    }
    for (int r = warmup ? -1 : 0; r < runs; r++) {
        sd_images im = {0};
        g.seed = 42 + (uint64_t)(r + 1);
        const double a = eng_bench_now_s();
        if (sd_pipe_generate(pipe, &g, &im, &err) != ENG_OK) goto fail;
        const double total = eng_bench_now_s() - a;
        const double rate = (double)im.calls / im.seconds_sample;
        printf("%s %d: UNet %.3f it/s (%.3f s/it), %.2f s/image (text %.2f s, sampling %.2f s, "
               "decode %.2f s)\n",
               r < 0 ? "warm-up" : "run", r < 0 ? 0 : r + 1, rate, 1.0 / rate,
               total / (double)batch, im.seconds_text, im.seconds_sample, im.seconds_decode);
        fflush(stdout);
        if (r >= 0) {
            its[r] = rate, secs[r] = total / (double)batch;
            text[r] = im.seconds_text, samp[r] = im.seconds_sample, dec[r] = im.seconds_decode;
        }
        sd_images_free(&im);
    }
    {
        const int n = (int)runs;
        eng_alloc_stats st;
        struct rusage ru;
        eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &st);
        getrusage(RUSAGE_SELF, &ru);
        double its_max = its[0];
        for (int i = 1; i < n; i++)
            its_max = its[i] > its_max ? its[i] : its_max;
        printf("summary over %d runs: UNet it/s best %.3f median %.3f; s/image min %.2f median "
               "%.2f; text min %.2f s, sampling min %.2f s, decode min %.2f s\n",
               n, its_max, median(its, n), min_of(secs, n), median(secs, n), min_of(text, n),
               min_of(samp, n), min_of(dec, n));
        printf("peak memory: engine host allocator %.2f GiB (reserved %.2f GiB), process RSS "
               "%.2f GiB\n",
               (double)st.peak_in_use / (1 << 30), (double)st.peak_reserved / (1 << 30),
               (double)ru.ru_maxrss / (1 << 20));
        eng_alloc *gpu = eng_ctx_alloc(ctx, ENG_DEVICE_CUDA);
        if (gpu != NULL) {
            eng_alloc_stats gs;
            eng_alloc_get_stats(gpu, &gs);
            printf("peak GPU memory: engine allocator %.2f GiB in use (reserved %.2f GiB)\n",
                   (double)gs.peak_in_use / (1 << 30), (double)gs.peak_reserved / (1 << 30));
        }
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "gen bench: %s\n", err.msg);
    status = err.code == ENG_E_INVALID_ARG ? 2 : 1;
done:
    sd_pipe_destroy(pipe);
    eng_ctx_destroy(ctx);
    return status;
}
