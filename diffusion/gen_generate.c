/* gen_generate.c: `gen -m MODEL -p PROMPT ...`, image generation from the command line in the
 * style of stable-diffusion.cpp and AUTOMATIC1111: flags, a progress bar per step, PNGs that
 * carry A1111's "parameters" text (prompt, negative prompt, steps, sampler, CFG scale, seed,
 * size, model hash and name). */
#define _XOPEN_SOURCE 700
#include "gen_generate.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "eng.h"
#include "eng_bench.h"
#include "eng_cuda.h"
#include "sd_pipe.h"
#include "tok.h"

static const char usage[] = GEN_GENERATE_USAGE;

typedef struct gen_opts {
    const char *model, *prompt, *negative, *output, *init_img, *init_noise, *vocab, *device;
    int64_t steps, seed_set, width, height, batch, clip_skip, threads;
    int64_t seed;
    double cfg, strength;
    int prediction, weights, hash, dtype;
    const char *sampler, *schedule;
} gen_opts;

static int parse_args(gen_opts *o, int argc, char **argv, eng_err *err) {
    int rc = ENG_OK;
    memset(o, 0, sizeof *o);
    o->output = "output.png";
    o->steps = 20, o->cfg = 7.0, o->seed = 42, o->batch = 1, o->clip_skip = 1, o->strength = 0.75;
    o->prediction = -1, o->weights = 1, o->hash = 1, o->device = "cpu", o->dtype = -1;
    o->sampler = "euler_a", o->schedule = "normal";
    for (int i = 1; i < argc && rc == ENG_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1; /* not an error: the caller exits 0 */
        }
#define IS(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
        if (strcmp(a, "--no-weights") == 0) {
            o->weights = 0;
            continue;
        }
        if (strcmp(a, "--no-hash") == 0) {
            o->hash = 0;
            continue;
        }
        static const char *const known[] = {"-m",
                                            "--model",
                                            "-p",
                                            "--prompt",
                                            "-n",
                                            "--negative-prompt",
                                            "-o",
                                            "--output",
                                            "-i",
                                            "--init-img",
                                            "--init-noise",
                                            "--vocab",
                                            "--device",
                                            "--sampling-method",
                                            "--schedule",
                                            "--steps",
                                            "--cfg-scale",
                                            "-s",
                                            "--seed",
                                            "-W",
                                            "--width",
                                            "-H",
                                            "--height",
                                            "-b",
                                            "--batch-count",
                                            "--strength",
                                            "--clip-skip",
                                            "--threads",
                                            "--prediction",
                                            "--dtype"};
        int is_known = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known |= strcmp(a, known[k]) == 0;
        if (!is_known)
            return eng_err_set(err, ENG_E_INVALID_ARG, "unknown option \"%s\" (see gen --help)", a);
        if (i + 1 >= argc) return eng_err_set(err, ENG_E_INVALID_ARG, "%s needs a value", a);
        const char *v = argv[++i];
        if (IS("-m", "--model")) {
            o->model = v;
        } else if (IS("-p", "--prompt")) {
            o->prompt = v;
        } else if (IS("-n", "--negative-prompt")) {
            o->negative = v;
        } else if (IS("-o", "--output")) {
            o->output = v;
        } else if (IS("-i", "--init-img")) {
            o->init_img = v;
        } else if (strcmp(a, "--init-noise") == 0) {
            o->init_noise = v;
        } else if (strcmp(a, "--vocab") == 0) {
            o->vocab = v;
        } else if (strcmp(a, "--device") == 0) {
            o->device = v;
        } else if (strcmp(a, "--dtype") == 0) {
            eng_dtype dt = ENG_DTYPE_F32;
            if ((rc = eng_dtype_parse(&dt, v, err)) == ENG_OK) o->dtype = (int)dt;
        } else if (strcmp(a, "--sampling-method") == 0) {
            o->sampler = v;
        } else if (strcmp(a, "--schedule") == 0) {
            o->schedule = v;
        } else if (strcmp(a, "--steps") == 0) {
            rc = eng_cli_parse_int(&o->steps, a, v, 1, 1000, err);
        } else if (strcmp(a, "--cfg-scale") == 0) {
            rc = eng_cli_parse_float(&o->cfg, a, v, 0, 100, err);
        } else if (IS("-s", "--seed")) {
            rc = eng_cli_parse_int(&o->seed, a, v, -1, INT64_MAX, err);
            o->seed_set = 1;
        } else if (IS("-W", "--width")) {
            rc = eng_cli_parse_int(&o->width, a, v, 1, SD_PIPE_MAX_SIDE, err);
        } else if (IS("-H", "--height")) {
            rc = eng_cli_parse_int(&o->height, a, v, 1, SD_PIPE_MAX_SIDE, err);
        } else if (IS("-b", "--batch-count")) {
            rc = eng_cli_parse_int(&o->batch, a, v, 1, SD_PIPE_MAX_BATCH, err);
        } else if (strcmp(a, "--strength") == 0) {
            rc = eng_cli_parse_float(&o->strength, a, v, 1e-6, 1, err);
        } else if (strcmp(a, "--clip-skip") == 0) {
            rc = eng_cli_parse_int(&o->clip_skip, a, v, 1, 64, err);
        } else if (strcmp(a, "--threads") == 0) {
            rc = eng_cli_parse_int(&o->threads, a, v, 1, 1024, err);
        } else if (strcmp(a, "--prediction") == 0) {
            if (strcmp(v, "eps") == 0 || strcmp(v, "epsilon") == 0) {
                o->prediction = SD_PRED_EPSILON;
            } else if (strcmp(v, "v") == 0 || strcmp(v, "v_prediction") == 0) {
                o->prediction = SD_PRED_V;
            } else {
                rc = eng_err_set(err, ENG_E_INVALID_ARG, "--prediction: \"%s\" is not eps or v", v);
            }
        } else {
            rc = eng_err_set(err, ENG_E_INVALID_ARG, "unknown option \"%s\" (see gen --help)", a);
        }
#undef IS
    }
    if (rc == ENG_OK && o->model == NULL)
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "no model: give -m MODEL (see gen --help)");
    return rc;
}

static int is_dir_path(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int gen_find_vocab(char *out, size_t cap, const char *flag, const char *model, eng_err *err) {
    struct stat st;
    char probe[4200];
    out[0] = '\0';
    snprintf(probe, sizeof probe, "%s/tokenizer/vocab.json", model);
    if ((flag == NULL || flag[0] == '\0') && is_dir_path(model) && stat(probe, &st) == 0)
        return ENG_OK; /* the diffusers folder's own tokenizer */
#ifdef GEN_DATA_DIR
    const char *builtin = GEN_DATA_DIR;
#else
    const char *builtin = NULL;
#endif
    return tok_clip_find_vocab(out, cap, flag, builtin, err);
}

/* ---- the model hash (A1111's "Model hash": the first 10 hex digits of the file's SHA-256) ---- */

/* The cache file: $XDG_CACHE_HOME/engine/model-hashes, else ~/.cache/engine/model-hashes. */
static int cache_path(char *out, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg != NULL && xdg[0] != '\0') {
        n = snprintf(out, cap, "%s/engine", xdg);
    } else if (home != NULL && home[0] != '\0') {
        n = snprintf(out, cap, "%s/.cache/engine", home);
    } else {
        return -1;
    }
    return n > 0 && (size_t)n + 16 < cap ? n : -1;
}

/* hex[11] = the short hash of `path`, from the cache when its size and mtime still match;
 * computed (and appended to the cache, best effort) otherwise. Returns 0, or -1 when the file
 * cannot be read (hex is then ""). */
static int model_hash(char hex[11], const char *path, FILE *log) {
    struct stat st;
    char cache[4096], line[4096 + 128], full[65];
    hex[0] = '\0';
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    char *real = realpath(path, NULL);
    const char *key = real != NULL ? real : path;
    const int n = cache_path(cache, sizeof cache);
    if (n > 0) {
        snprintf(cache + n, sizeof cache - (size_t)n, "/model-hashes");
        FILE *f = fopen(cache, "r");
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            long long size = 0, mtime = 0;
            char h[65];
            int off = 0;
            if (sscanf(line, "%lld %lld %64s %n", &size, &mtime, h, &off) == 3 && off > 0 &&
                size == (long long)st.st_size && mtime == (long long)st.st_mtime) {
                line[strcspn(line, "\n")] = '\0';
                if (strcmp(line + off, key) == 0) {
                    snprintf(hex, 11, "%.10s", h);
                    break;
                }
            }
        }
        if (f != NULL) fclose(f);
    }
    if (hex[0] == '\0') {
        eng_err err = {0};
        const double t0 = eng_bench_now_s();
        if (eng_sha256_file_hex(full, path, &err) != ENG_OK) {
            fprintf(log, "gen: warning: no model hash: %s\n", err.msg);
            free(real);
            return -1;
        }
        snprintf(hex, 11, "%.10s", full);
        fprintf(log, "gen: model hash %s (SHA-256 of %s in %.1f s, cached)\n", hex, path,
                eng_bench_now_s() - t0);
        if (n > 0) {
            cache[n] = '\0';
            char parent[4096];
            snprintf(parent, sizeof parent, "%s", cache);
            char *slash = strrchr(parent, '/');
            if (slash != NULL) {
                *slash = '\0';
                mkdir(parent, 0755);
            }
            mkdir(cache, 0755);
            snprintf(cache + n, sizeof cache - (size_t)n, "/model-hashes");
            FILE *f = fopen(cache, "a");
            if (f != NULL) {
                fprintf(f, "%lld %lld %s %s\n", (long long)st.st_size, (long long)st.st_mtime, full,
                        key);
                fclose(f);
            }
        }
    }
    free(real);
    return 0;
}

/* "v1-5-pruned-emaonly" from ".../v1-5-pruned-emaonly.safetensors" (a folder: its name). */
static void model_name(char *out, size_t cap, const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    snprintf(out, cap, "%.*s", (int)(len - start), path + start);
    char *dot = strrchr(out, '.');
    if (dot != NULL && dot != out && strcmp(dot, ".safetensors") == 0) *dot = '\0';
}

/* ---- init image / noise --------------------------------------------------------------------- */

static int read_init_image(float **out, int64_t *w, int64_t *h, const char *path, eng_err *err) {
    eng_image im = {0};
    int rc = eng_image_read(&im, path, 3, err);
    if (rc != ENG_OK) return rc;
    const size_t n = (size_t)(im.width * im.height * 3);
    float *px = (float *)malloc(n * sizeof *px);
    if (px == NULL) {
        eng_image_free(&im);
        return eng_err_set(err, ENG_E_OOM, "gen: out of memory for %s", path);
    }
    for (size_t i = 0; i < n; i++)
        px[i] = (float)im.data[i] / 255.0f;
    *w = im.width, *h = im.height;
    *out = px;
    eng_image_free(&im);
    return ENG_OK;
}

/* (batch, h, w, c) NHWC from the file's one f32 tensor (batch, c, h, w). */
static int read_init_noise(
    float **out, const char *path, int64_t batch, int64_t c, int64_t h, int64_t w, eng_err *err) {
    eng_safetensors *f = NULL;
    eng_tensor t;
    int rc = eng_safetensors_open(&f, path, err);
    if (rc != ENG_OK) return rc;
    if (eng_safetensors_count(f) != 1) {
        rc = eng_err_set(err, ENG_E_FORMAT, "--init-noise: %s holds %lld tensors, expected one",
                         path, (long long)eng_safetensors_count(f));
        goto done;
    }
    const eng_safetensors_info *info = eng_safetensors_info_at(f, 0);
    if ((rc = eng_safetensors_view(&t, f, info->name, err)) != ENG_OK) goto done;
    if (t.dtype != ENG_DTYPE_F32 || t.ndim != 4 || t.shape[0] != batch || t.shape[1] != c ||
        t.shape[2] != h || t.shape[3] != w) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "--init-noise: %s: tensor \"%s\" is %s (%lld, %lld, %lld, %lld), "
                         "expected F32 (%lld, %lld, %lld, %lld) = (batch, channels, H/8, W/8)",
                         path, info->name, info->dtype_name, (long long)t.shape[0],
                         (long long)t.shape[1], (long long)t.shape[2], (long long)t.shape[3],
                         (long long)batch, (long long)c, (long long)h, (long long)w);
        goto done;
    }
    float *x = (float *)malloc((size_t)(batch * c * h * w) * sizeof *x);
    if (x == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "--init-noise: out of memory");
        goto done;
    }
    const float *src = (const float *)t.data;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < h * w; i++)
                x[(b * h * w + i) * c + k] = src[(b * c + k) * h * w + i];
    *out = x;
done:
    eng_safetensors_close(f);
    return rc;
}

/* ---- output --------------------------------------------------------------------------------- */

static void output_path(char *out, size_t cap, const char *base, int64_t i) {
    if (i == 0) {
        snprintf(out, cap, "%s", base);
        return;
    }
    const char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    if (dot != NULL && (slash == NULL || dot > slash))
        snprintf(out, cap, "%.*s_%lld%s", (int)(dot - base), base, (long long)i + 1, dot);
    else
        snprintf(out, cap, "%s_%lld.png", base, (long long)i + 1);
}

/* A1111's infotext. */
static void infotext(char *out,
                     size_t cap,
                     const gen_opts *o,
                     const sd_gen_params *g,
                     uint64_t seed,
                     const char *hash,
                     const char *name) {
    char smp[64];
    size_t used = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (used < cap) used += (size_t)snprintf(out + used, cap - used, __VA_ARGS__);             \
    } while (0)
    ADD("%s", g->prompt != NULL ? g->prompt : "");
    if (g->negative != NULL && g->negative[0] != '\0') ADD("\nNegative prompt: %s", g->negative);
    ADD("\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %" PRIu64 ", Size: %dx%d", g->steps,
        sd_sampler_a1111_name(g->sampler, g->schedule, smp, sizeof smp), g->cfg_scale, seed,
        g->width, g->height);
    if (hash[0] != '\0') ADD(", Model hash: %s", hash);
    ADD(", Model: %s", name);
    if (g->init_image != NULL) ADD(", Denoising strength: %g", g->strength);
    if (g->clip_skip > 1) ADD(", Clip skip: %d", g->clip_skip);
    ADD(", Version: engine %s", ENG_VERSION_STRING);
    (void)o;
#undef ADD
}

static int write_images(const sd_images *im,
                        const gen_opts *o,
                        const sd_gen_params *g,
                        const char *hash,
                        const char *name,
                        eng_err *err) {
    int rc = ENG_OK;
    eng_image img = {0};
    char path[4096], text[8192];
    if ((rc = eng_image_alloc(&img, im->width, im->height, 3, err)) != ENG_OK) return rc;
    const int64_t npx = im->width * im->height * 3;
    for (int64_t b = 0; b < im->batch && rc == ENG_OK; b++) {
        const float *src = im->pixels + b * npx;
        for (int64_t i = 0; i < npx; i++) /* diffusers: (x * 255).round() */
            img.data[i] = (uint8_t)lrintf(src[i] * 255.0f);
        infotext(text, sizeof text, o, g, g->seed + (uint64_t)b, hash, name);
        const eng_image_text t = {ENG_IMAGE_TEXT_PARAMETERS, text};
        output_path(path, sizeof path, o->output, b);
        if ((rc = eng_image_write_png(path, &img, &t, 1, err)) == ENG_OK) printf("%s\n", path);
    }
    eng_image_free(&img);
    return rc;
}

int gen_generate_main(int argc, char **argv) {
    int rc = ENG_OK, status = 1;
    eng_err err = {0};
    gen_opts o;
    eng_ctx *ctx = NULL;
    sd_pipe *pipe = NULL;
    sd_images im = {0};
    float *init = NULL, *noise = NULL;
    char vocab[4096], hash[11] = "", name[256];
    if ((rc = parse_args(&o, argc, argv, &err)) != ENG_OK) {
        if (rc == 1) return 0; /* --help */
        fprintf(stderr, "gen: %s\n", err.msg);
        return 2;
    }
    sd_gen_params g;
    sd_gen_params_init(&g);
    g.prompt = o.prompt != NULL ? o.prompt : "";
    g.negative = o.negative;
    g.steps = (int)o.steps;
    g.cfg_scale = o.cfg;
    g.batch = (int)o.batch;
    g.clip_skip = (int)o.clip_skip;
    g.weights = o.weights;
    g.strength = o.strength;
    g.progress = stderr;
    if (o.seed < 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g.seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec) % 4294967296u;
    } else {
        g.seed = (uint64_t)o.seed;
    }
    if ((rc = sd_sampler_parse(&g.sampler, o.sampler, &err)) != ENG_OK ||
        (rc = sd_schedule_parse(&g.schedule, o.schedule, &err)) != ENG_OK) {
        fprintf(stderr, "gen: %s\n", err.msg);
        return 2;
    }
    sd_pipe_params pp;
    sd_pipe_params_init(&pp);
    pp.model = o.model;
    pp.prediction = o.prediction;
    pp.dtype = o.dtype;
    if (strcmp(o.device, "cuda") == 0) {
        pp.device = ENG_DEVICE_CUDA;
    } else if (strcmp(o.device, "cpu") != 0) {
        fprintf(stderr, "gen: --device: \"%s\" is not cpu or cuda\n", o.device);
        return 2;
    }
    if ((rc = gen_find_vocab(vocab, sizeof vocab, o.vocab, o.model, &err)) != ENG_OK) {
        fprintf(stderr, "gen: %s\n", err.msg);
        return 2;
    }
    pp.vocab = vocab[0] != '\0' ? vocab : NULL;

    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    if ((rc = eng_ctx_params_from_env(&cp, &err)) != ENG_OK) goto fail;
    if (o.threads > 0) cp.threads = (int)o.threads;
    if ((rc = eng_ctx_create(&ctx, &cp, &err)) != ENG_OK) goto fail;
    if (pp.device == ENG_DEVICE_CUDA && (rc = eng_cuda_attach(ctx, 0, 0, &err)) != ENG_OK)
        goto fail;

    const double t0 = eng_bench_now_s();
    fprintf(stderr, "gen: loading %s\n", o.model);
    if ((rc = sd_pipe_load(&pipe, ctx, &pp, &err)) != ENG_OK) goto fail;
    const wt_sd_config *cfg = sd_pipe_config(pipe);
    fprintf(stderr, "gen: %s %s model (%s prediction) loaded in %.1f s\n",
            wt_family_name(cfg->family), is_dir_path(o.model) ? "diffusers" : "single-file",
            sd_pipe_prediction(pipe) == SD_PRED_V ? "v" : "epsilon", eng_bench_now_s() - t0);
    if (cfg->family == WT_FAMILY_SD2 && o.prediction < 0 && !is_dir_path(o.model))
        fprintf(stderr, "gen: note: an SD 2.x single file: assuming epsilon prediction (512-base); "
                        "pass --prediction v for 768-v models\n");

    g.width = (int)o.width, g.height = (int)o.height;
    if (o.init_img != NULL) {
        int64_t iw = 0, ih = 0;
        if ((rc = read_init_image(&init, &iw, &ih, o.init_img, &err)) != ENG_OK) goto fail;
        if (g.width == 0) g.width = (int)iw;
        if (g.height == 0) g.height = (int)ih;
        if (iw != g.width || ih != g.height) {
            rc = eng_err_set(&err, ENG_E_INVALID_ARG,
                             "--init-img: %s is %lldx%lld but the output is %dx%d (resize it "
                             "first, or leave -W/-H out to use its size)",
                             o.init_img, (long long)iw, (long long)ih, g.width, g.height);
            goto fail;
        }
        g.init_image = init;
    }
    sd_pipe_default_size(pipe, &g);
    if (o.init_noise != NULL) {
        const int64_t up = (int64_t)1 << (cfg->vae.n_levels - 1);
        if (g.width % up != 0 || g.height % up != 0) {
            rc = eng_err_set(&err, ENG_E_INVALID_ARG, "size %dx%d is not a multiple of %lld",
                             g.width, g.height, (long long)up);
            goto fail;
        }
        if ((rc = read_init_noise(&noise, o.init_noise, g.batch, cfg->unet.in_channels,
                                  g.height / up, g.width / up, &err)) != ENG_OK)
            goto fail;
        g.init_noise = noise;
    }
    model_name(name, sizeof name, o.model);
    /* a single file's hash, or a diffusers folder's UNet weights' */
    if (o.hash) model_hash(hash, sd_pipe_unet_file(pipe), stderr);

    {
        char smp[64];
        fprintf(stderr, "gen: %dx%d, %d steps of %s, CFG %g, seed %" PRIu64 ", batch %d%s\n",
                g.width, g.height, g.steps,
                sd_sampler_a1111_name(g.sampler, g.schedule, smp, sizeof smp), g.cfg_scale, g.seed,
                g.batch, g.init_image != NULL ? " (img2img)" : "");
    }
    if ((rc = sd_pipe_generate(pipe, &g, &im, &err)) != ENG_OK) goto fail;
    if ((rc = write_images(&im, &o, &g, hash, name, &err)) != ENG_OK) goto fail;
    {
        eng_alloc_stats st;
        struct rusage ru;
        eng_alloc_get_stats(eng_ctx_alloc(ctx, ENG_DEVICE_CPU), &st);
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr,
                "gen: text %.2f s, sampling %.2f s (%lld UNet passes, %.2f s each), decode "
                "%.2f s; engine memory peak %.2f GiB, process peak RSS %.2f GiB\n",
                im.seconds_text, im.seconds_sample, (long long)im.calls,
                im.calls > 0 ? im.seconds_sample / (double)im.calls : 0.0, im.seconds_decode,
                (double)st.peak_in_use / (1024.0 * 1024 * 1024),
                (double)ru.ru_maxrss / (1024.0 * 1024));
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "gen: %s\n", err.msg);
    status = rc == ENG_E_INVALID_ARG ? 2 : 1;
done:
    sd_images_free(&im);
    free(init);
    free(noise);
    sd_pipe_destroy(pipe);
    eng_ctx_destroy(ctx);
    return status;
}
