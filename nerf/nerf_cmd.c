/* nerf_cmd.c: the `nerf` commands (nerf_cmd.h) on the trainer (nerf_train.h); --device cuda
 * (train, eval, render, bench) moves it to the first CUDA device (nerf_train_cuda.h). */
#define _POSIX_C_SOURCE 200809L
#include "nerf_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng.h"
#include "eng_bench.h"
#include "eng_cuda.h"
#include "nerf.h"
#include "nerf_train.h"
#include "nerf_train_cuda.h"

/* ---- shared helpers ------------------------------------------------------------------------- */

typedef struct cmd_env {
    eng_ctx *ctx;
    eng_err err;
} cmd_env;

static int env_open(cmd_env *e, int64_t threads, const char *device) {
    eng_ctx_params cp;
    memset(e, 0, sizeof *e);
    if (device != NULL && strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
        fprintf(stderr, "nerf: --device %s: expected cpu or cuda\n", device);
        return 2;
    }
    eng_ctx_params_init(&cp);
    if (eng_ctx_params_from_env(&cp, &e->err) != ENG_OK) {
        fprintf(stderr, "nerf: %s\n", e->err.msg);
        return 2;
    }
    if (threads > 0) cp.threads = (int)threads;
    if (eng_ctx_create(&e->ctx, &cp, &e->err) != ENG_OK) {
        fprintf(stderr, "nerf: %s\n", e->err.msg);
        return 1;
    }
    if (device != NULL && strcmp(device, "cuda") == 0 &&
        eng_cuda_attach(e->ctx, 0, 0, &e->err) != ENG_OK) {
        fprintf(stderr, "nerf: --device cuda: %s\n", e->err.msg);
        eng_ctx_destroy(e->ctx);
        e->ctx = NULL;
        return 1;
    }
    return 0;
}

static eng_device_kind device_kind(const char *device) {
    return device != NULL && strcmp(device, "cuda") == 0 ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
}

static int mkdir_p(const char *dir) {
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* rgb float (h, w, 3) in [0, 1] -> PNG. */
static int write_rgb(const char *path, const float *rgb, int64_t w, int64_t h, eng_err *err) {
    eng_image im = {0};
    int rc = eng_image_alloc(&im, w, h, 3, err);
    if (rc != ENG_OK) return rc;
    for (int64_t i = 0; i < w * h * 3; i++) {
        const float v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        im.data[i] = (uint8_t)lrintf(v * 255.0f);
    }
    rc = eng_image_write_png(path, &im, NULL, 0, err);
    eng_image_free(&im);
    return rc;
}

/* depth (h, w) -> grey PNG, near bright, 0 (no hit) black, scaled by the largest depth. */
static int write_depth(const char *path, const float *depth, int64_t w, int64_t h, eng_err *err) {
    eng_image im = {0};
    float mx = 0;
    for (int64_t i = 0; i < w * h; i++)
        mx = depth[i] > mx ? depth[i] : mx;
    int rc = eng_image_alloc(&im, w, h, 1, err);
    if (rc != ENG_OK) return rc;
    for (int64_t i = 0; i < w * h; i++)
        im.data[i] =
            depth[i] > 0 && mx > 0 ? (uint8_t)lrintf(255.0f * (1.0f - 0.8f * depth[i] / mx)) : 0;
    rc = eng_image_write_png(path, &im, NULL, 0, err);
    eng_image_free(&im);
    return rc;
}

/* The ground truth of a dataset frame composited on white, rgb (h, w, 3). */
static void frame_on_white(float *rgb, const nerf_dataset *ds, int64_t frame) {
    const int64_t n = nerf_dataset_width(ds) * nerf_dataset_height(ds);
    const uint8_t *px = nerf_dataset_rgba(ds, frame);
    for (int64_t i = 0; i < n; i++) {
        const float a = (float)px[4 * i + 3] / 255.0f;
        for (int c = 0; c < 3; c++)
            rgb[3 * i + c] = (float)px[4 * i + c] / 255.0f * a + (1.0f - a);
    }
}

static int
load_dataset(nerf_dataset **ds, eng_ctx *ctx, const char *path, const char *split, eng_err *err) {
    nerf_load_params lp;
    eng_progress_params pp;
    nerf_load_params_init(&lp);
    eng_progress_params_init(&pp);
    pp.label = "load";
    lp.split = split;
    lp.progress = &pp;
    return nerf_dataset_load(ds, ctx, path, &lp, err);
}

/* Mean PSNR and SSIM of the model on every frame of ds (on white); renders and per-view
 * metrics written under out_dir when it is not NULL (renders/, metrics.json). */
static int evaluate(nerf_trainer *t,
                    const nerf_dataset *ds,
                    const char *out_dir,
                    int64_t every,
                    int verbose,
                    double *mean_psnr,
                    double *mean_ssim,
                    eng_err *err) {
    const int64_t w = nerf_dataset_width(ds), h = nerf_dataset_height(ds),
                  nf = nerf_dataset_count(ds);
    const float white[3] = {1, 1, 1};
    float *rgb = (float *)malloc((size_t)(w * h * 3) * sizeof *rgb);
    float *gt = (float *)malloc((size_t)(w * h * 3) * sizeof *gt);
    FILE *js = NULL;
    int rc = ENG_OK;
    double sp = 0, ss = 0;
    char path[4200];
    if (rgb == NULL || gt == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf eval: out of memory");
        goto done;
    }
    if (out_dir != NULL) {
        snprintf(path, sizeof path, "%s/renders", out_dir);
        if (mkdir_p(path) != 0) {
            rc = eng_err_set(err, ENG_E_IO, "nerf eval: cannot create %s", path);
            goto done;
        }
        snprintf(path, sizeof path, "%s/metrics.json.tmp", out_dir);
        if ((js = fopen(path, "w")) == NULL) {
            rc = eng_err_set(err, ENG_E_IO, "nerf eval: cannot create %s", path);
            goto done;
        }
        fprintf(js, "{\n  \"views\": [\n");
    }
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_progress_params_init(&pp);
    pp.label = "eval";
    pp.total = (nf + every - 1) / every;
    pp.unit = "view";
    if (!verbose && eng_progress_create(&bar, &pp, NULL) != ENG_OK) bar = NULL;
    int64_t used = 0;
    for (int64_t f = 0; f < nf; f += every) {
        used++;
        double ssim = 0;
        if ((rc = nerf_trainer_render_frame(t, rgb, NULL, ds, f, white, err)) != ENG_OK) break;
        frame_on_white(gt, ds, f);
        const double psnr = nerf_metrics_psnr(rgb, gt, w * h * 3);
        if (w >= NERF_SSIM_WINDOW && h >= NERF_SSIM_WINDOW &&
            (rc = nerf_metrics_ssim(&ssim, rgb, gt, w, h, 3, err)) != ENG_OK)
            break;
        sp += psnr, ss += ssim;
        if (verbose)
            printf("view %3lld  %-28s PSNR %6.2f dB  SSIM %.4f\n", (long long)f,
                   nerf_dataset_frame_path(ds, f), psnr, ssim);
        if (bar != NULL) eng_progress_add(bar, 1, NULL);
        if (out_dir != NULL) {
            snprintf(path, sizeof path, "%s/renders/r_%03lld.png", out_dir, (long long)f);
            if ((rc = write_rgb(path, rgb, w, h, err)) != ENG_OK) break;
            fprintf(js, "    {\"frame\": \"%s\", \"psnr\": %.4f, \"ssim\": %.5f}%s\n",
                    nerf_dataset_frame_path(ds, f), psnr, ssim, f + every < nf ? "," : "");
        }
    }
    if (bar != NULL) {
        eng_progress_finish(bar, NULL);
        eng_progress_destroy(bar);
    }
    if (rc != ENG_OK) goto done;
    *mean_psnr = sp / (double)used;
    *mean_ssim = ss / (double)used;
    if (js != NULL) {
        char final[4200];
        fprintf(js,
                "  ],\n  \"mean_psnr\": %.4f,\n  \"mean_ssim\": %.5f,\n  \"views_count\": %lld,\n",
                *mean_psnr, *mean_ssim, (long long)used);
        fprintf(js, "  \"step\": %lld\n}\n", (long long)nerf_trainer_step_count(t));
        const int bad = fclose(js) != 0;
        js = NULL;
        snprintf(path, sizeof path, "%s/metrics.json.tmp", out_dir);
        snprintf(final, sizeof final, "%s/metrics.json", out_dir);
        if (bad || rename(path, final) != 0)
            rc = eng_err_set(err, ENG_E_IO, "nerf eval: cannot write %s", final);
    }
done:
    if (js != NULL) fclose(js);
    free(rgb);
    free(gt);
    return rc;
}

/* Parses a command's arguments: -1 to go on, else the exit status (0 after --help, 2 for a bad
 * argument, with the reason on stderr). */
static int parse_cmd(const char *cmd,
                     const char *usage,
                     int argc,
                     char **argv,
                     const eng_cli_opt *opts,
                     int n_opts,
                     const char **pos,
                     int max_pos,
                     int *n_pos) {
    eng_err err = {0};
    const int rc = eng_cli_parse(argc, argv, opts, n_opts, pos, max_pos, n_pos, &err);
    if (rc == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (rc != ENG_OK) {
        fprintf(stderr, "nerf %s: %s (nerf %s --help)\n", cmd, err.msg, cmd);
        return 2;
    }
    return -1;
}

#define N_OPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- train ---------------------------------------------------------------------------------- */

static const char train_usage[] =
    "usage: nerf train SCENE [--steps N | --time SECONDS] [--snapshot PATH] [--snapshot-every N]\n"
    "                  [--resume] [--device cpu|cuda] [--threads N] [--samples N] [--seed N]\n"
    "                  [--contract auto|on|off] [--holdout K] [--view]\n"
    "\n"
    "Trains on SCENE (a transforms.json, or a folder with transforms.json or\n"
    "transforms_train.json). Progress shows the loss, the training PSNR and rays/s.\n"
    "  --steps N           training steps (default 2000 unless --time is given)\n"
    "  --time SECONDS      train for this long instead\n"
    "  --snapshot PATH     snapshot file (default: SCENE's folder name + .nerf in the current\n"
    "                      folder); written atomically every --snapshot-every steps (default 500)\n"
    "                      and at the end\n"
    "  --resume            continue from the snapshot: the same run as one without a break\n"
    "  --samples N         samples per step (default 65536; 262144 with --device cuda)\n"
    "  --contract MODE     Mip-NeRF 360 style contraction of the space beyond the aabb_scale\n"
    "                      box, for unbounded scenes: the background is learned out to 64\n"
    "                      times the box's size instead of being cut at the box. auto\n"
    "                      (default): off, the multi-cascade occupancy grid (it measured\n"
    "                      better on fox); on: for 360-degree captures whose far walls or\n"
    "                      sky matter. Saved in the snapshot (eval, render, mesh follow it)\n"
    "  --holdout K         do not train on frames 0, K, 2K, ... (K >= 2), so that\n"
    "                      `nerf eval --holdout K` measures views never trained on\n"
    "  --view              watch the training live in the viewer (same process; frames run\n"
    "                      between training slices, first). Space pauses training, Tab shows\n"
    "                      depth; closing the window stops training and writes the snapshot\n"
    "  --view-screenshot P save the viewer's frame after --view-frames N frames (default 1)\n"
    "                      as a PNG, then close it (tests, servers under Xvfb)\n";

static nerf_cmd_view_fn g_viewer; /* set by the nerf executable when built with the viewer */

void nerf_cmd_set_viewer(nerf_cmd_view_fn fn) {
    g_viewer = fn;
}

static void default_snapshot(char *out, size_t cap, const char *scene) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", scene);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = '\0';
    const char *dot = strrchr(tmp, '.');
    if (dot != NULL && strcmp(dot, ".json") == 0) { /* a file: its folder's name */
        char *slash = strrchr(tmp, '/');
        if (slash != NULL)
            *slash = '\0';
        else
            snprintf(tmp, sizeof tmp, "scene");
    }
    const char *base = strrchr(tmp, '/');
    snprintf(out, cap, "%s.nerf", base != NULL ? base + 1 : tmp);
}

int nerf_cmd_train(int argc, char **argv) {
    const char *scene = NULL, *snapshot = NULL, *device = "cpu", *contract = "auto";
    int64_t steps = -1, every = 500, threads = 0, samples = 0, seed = 1, holdout = 0;
    int64_t view_frames = 1;
    double seconds = 0;
    int resume = 0, status = 1, n_pos = 0, view = 0;
    const char *view_shot = NULL;
    const eng_cli_opt opts[] = {
        {"--steps", NULL, ENG_CLI_INT, &steps, 1, 1e8},
        {"--time", NULL, ENG_CLI_FLOAT, &seconds, 1e-3, 1e7},
        {"--snapshot", NULL, ENG_CLI_STR, &snapshot, 0, 0},
        {"--snapshot-every", NULL, ENG_CLI_INT, &every, 1, 1e8},
        {"--resume", NULL, ENG_CLI_FLAG, &resume, 0, 0},
        {"--device", NULL, ENG_CLI_STR, &device, 0, 0},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
        {"--samples", NULL, ENG_CLI_INT, &samples, 1024, 1 << 24},
        {"--seed", NULL, ENG_CLI_INT, &seed, 0, 9e18},
        {"--contract", NULL, ENG_CLI_STR, &contract, 0, 0},
        {"--holdout", NULL, ENG_CLI_INT, &holdout, 0, 1e6},
        {"--view", NULL, ENG_CLI_FLAG, &view, 0, 0},
        {"--view-screenshot", NULL, ENG_CLI_STR, &view_shot, 0, 0},
        {"--view-frames", NULL, ENG_CLI_INT, &view_frames, 1, 1e7},
    };
    const int pr =
        parse_cmd("train", train_usage, argc, argv, opts, N_OPTS(opts), &scene, 1, &n_pos);
    if (pr >= 0) return pr;
    if (scene == NULL) {
        fprintf(stderr, "nerf train: no scene given\n%s", train_usage);
        return 2;
    }
    int contract_mode = NERF_CONTRACT_AUTO;
    if (strcmp(contract, "on") == 0) {
        contract_mode = 1;
    } else if (strcmp(contract, "off") == 0) {
        contract_mode = 0;
    } else if (strcmp(contract, "auto") != 0) {
        fprintf(stderr, "nerf train: --contract %s: expected auto, on or off\n", contract);
        return 2;
    }
    if (holdout == 1) {
        fprintf(stderr, "nerf train: --holdout 1 would hold out every frame (use K >= 2)\n");
        return 2;
    }
    if ((view_shot != NULL) && !view) view = 1;
    if (view && g_viewer == NULL) {
        fprintf(stderr, "nerf train: --view: this nerf was built without the viewer (Vulkan, "
                        "GLFW and glslc were not found at configure time)\n");
        return 2;
    }
    if (steps < 0 && seconds <= 0) steps = 2000;
    char snap[4200];
    if (snapshot == NULL) {
        default_snapshot(snap, sizeof snap, scene);
        snapshot = snap;
    }
    cmd_env e;
    int st = env_open(&e, threads, device);
    if (st != 0) return st;
    nerf_dataset *ds = NULL;
    nerf_trainer *t = NULL;
    nerf_live *run = NULL;
    int status_view = 0;
    if (load_dataset(&ds, e.ctx, scene, "train", &e.err) != ENG_OK) goto fail;
    struct stat sb;
    if (resume && stat(snapshot, &sb) == 0) {
        if (nerf_trainer_load(&t, e.ctx, snapshot, &e.err) != ENG_OK ||
            nerf_trainer_set_dataset(t, ds, &e.err) != ENG_OK ||
            nerf_trainer_set_device(t, device_kind(device), &e.err) != ENG_OK)
            goto fail;
        fprintf(stderr, "nerf train: resuming %s at step %lld\n", snapshot,
                (long long)nerf_trainer_step_count(t));
    } else {
        if (resume) fprintf(stderr, "nerf train: no snapshot %s yet: starting fresh\n", snapshot);
        nerf_train_params tp;
        nerf_train_params_init(&tp);
        tp.device = device_kind(device);
        tp.target_samples = samples > 0                    ? samples
                            : tp.device == ENG_DEVICE_CUDA ? NERF_CUDA_TARGET_SAMPLES
                                                           : tp.target_samples;
        tp.seed = (uint64_t)seed;
        tp.field.contract = contract_mode;
        tp.holdout = holdout;
        if (nerf_trainer_create(&t, e.ctx, ds, &tp, &e.err) != ENG_OK) goto fail;
    }
    const nerf_train_params *rp = nerf_trainer_get_params(t);
    char held[96] = "";
    if (rp->holdout >= 2)
        snprintf(held, sizeof held, " (frames 0, %lld, %lld, ... held out)", (long long)rp->holdout,
                 (long long)(2 * rp->holdout));
    fprintf(stderr,
            "nerf train: %s: %lld frames%s of %lldx%lld, aabb_scale %g, contraction %s; "
            "snapshot %s\n",
            nerf_dataset_json_path(ds), (long long)nerf_dataset_count(ds), held,
            (long long)nerf_dataset_width(ds), (long long)nerf_dataset_height(ds),
            (double)nerf_dataset_aabb_scale(ds), rp->field.contract ? "on" : "off", snapshot);
    const int64_t start = nerf_trainer_step_count(t);
    /* Training is a job on the scheduler (nerf_live): with --view the viewer's frames run
     * between its slices at a higher priority. */
    nerf_live_params lp;
    nerf_live_params_init(&lp);
    lp.end_step = steps > 0 ? steps : 0; /* --steps counts from step 0 */
    lp.seconds = seconds;
    lp.snapshot = snapshot;
    lp.snapshot_every = every;
    const double t0 = eng_bench_now_s();
    if (nerf_live_start(&run, e.ctx, t, &lp, &e.err) != ENG_OK) goto fail;
    if (view) {
        nerf_cmd_view_opts vo = {view_shot, view_frames, 0, nerf_dataset_width(ds),
                                 nerf_dataset_height(ds)};
        while (vo.width > 960 || vo.height > 960) { /* fox: 1080x1920 -> 540x960 */
            vo.width = (vo.width + 1) / 2;
            vo.height = (vo.height + 1) / 2;
        }
        const char *env = getenv("ENG_VK_VALIDATE");
        vo.validate = env != NULL && strcmp(env, "") != 0 && strcmp(env, "0") != 0;
        int64_t messages = 0;
        const int vrc = g_viewer(t, run, &vo, &messages, &e.err);
        if (!nerf_live_done(run)) {
            nerf_live_stop(run);
            fprintf(stderr, "\nnerf train: viewer closed: stopping at the next slice\n");
        }
        if (vrc != ENG_OK) {
            fprintf(stderr, "nerf train: viewer: %s\n", e.err.msg);
            status_view = 1;
        }
        if (messages > 0) {
            fprintf(stderr, "nerf train: %lld Vulkan validation messages\n", (long long)messages);
            status_view = 3;
        }
    }
    if (nerf_live_finish(run, &e.err) != ENG_OK) goto fail;
    fprintf(stderr, "nerf train: %lld steps in %.1f s; wrote %s\n",
            (long long)(nerf_trainer_step_count(t) - start), eng_bench_now_s() - t0, snapshot);
    status = status_view;
    goto done;
fail:
    fprintf(stderr, "nerf train: %s\n", e.err.msg);
    status = e.err.code == ENG_E_INVALID_ARG ? 2 : 1;
done:
    nerf_live_destroy(run);
    nerf_trainer_destroy(t);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- eval ----------------------------------------------------------------------------------- */

static const char eval_usage[] =
    "usage: nerf eval SNAPSHOT --transforms FILE [--out DIR] [--every K | --holdout K]\n"
    "                 [--device cpu|cuda] [--threads N]\n"
    "Renders every view of FILE on white and prints per-view and mean PSNR and SSIM\n"
    "(11x11 Gaussian, the NeRF papers' constants); --out writes the renders and\n"
    "metrics.json; --every K evaluates views 0, K, 2K, ... only (quicker on a CPU);\n"
    "--holdout K is the same set: the views `nerf train --holdout K` did not train on.\n";

int nerf_cmd_eval(int argc, char **argv) {
    const char *snap = NULL, *transforms = NULL, *out = NULL, *device = "cpu";
    int64_t threads = 0, every = 1, holdout = 0;
    int n_pos = 0;
    const eng_cli_opt opts[] = {
        {"--device", NULL, ENG_CLI_STR, &device, 0, 0},
        {"--transforms", NULL, ENG_CLI_STR, &transforms, 0, 0},
        {"--out", NULL, ENG_CLI_STR, &out, 0, 0},
        {"--every", NULL, ENG_CLI_INT, &every, 1, 1e6},
        {"--holdout", NULL, ENG_CLI_INT, &holdout, 2, 1e6},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
    };
    const int pr = parse_cmd("eval", eval_usage, argc, argv, opts, N_OPTS(opts), &snap, 1, &n_pos);
    if (pr >= 0) return pr;
    if (holdout > 0) {
        if (every != 1 && every != holdout) {
            fprintf(stderr, "nerf eval: --every %lld and --holdout %lld disagree (give one)\n",
                    (long long)every, (long long)holdout);
            return 2;
        }
        every = holdout;
    }
    if (snap == NULL || transforms == NULL) {
        fprintf(stderr, "nerf eval: give SNAPSHOT and --transforms FILE (nerf eval --help)\n");
        return 2;
    }
    cmd_env e;
    int st = env_open(&e, threads, device);
    if (st != 0) return st;
    nerf_trainer *t = NULL;
    nerf_dataset *ds = NULL;
    double psnr = 0, ssim = 0;
    int status = 1;
    if (nerf_trainer_load(&t, e.ctx, snap, &e.err) != ENG_OK ||
        nerf_trainer_set_device(t, device_kind(device), &e.err) != ENG_OK ||
        load_dataset(&ds, e.ctx, transforms, "test", &e.err) != ENG_OK ||
        evaluate(t, ds, out, every, 1, &psnr, &ssim, &e.err) != ENG_OK) {
        fprintf(stderr, "nerf eval: %s\n", e.err.msg);
    } else {
        printf("mean over %lld views: PSNR %.2f dB, SSIM %.4f (snapshot step %lld)\n",
               (long long)((nerf_dataset_count(ds) + every - 1) / every), psnr, ssim,
               (long long)nerf_trainer_step_count(t));
        if (out != NULL) printf("wrote %s/renders/ and %s/metrics.json\n", out, out);
        status = 0;
    }
    nerf_dataset_destroy(ds);
    nerf_trainer_destroy(t);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- render --------------------------------------------------------------------------------- */

/* Orbit camera i of n: elevation `elev` radians, distance r, looking at the box centre, z up. */
static int orbit_camera(float c2w[12], int64_t i, int64_t n, double r, double elev, eng_err *err) {
    const double az = 2.0 * 3.14159265358979323846 * (double)i / (double)n;
    const double eye[3] = {0.5 + r * cos(elev) * cos(az), 0.5 + r * cos(elev) * sin(az),
                           0.5 + r * sin(elev)};
    const double target[3] = {0.5, 0.5, 0.5}, up[3] = {0, 0, 1};
    double m[12];
    const int rc = nerf_scene_look_at(m, eye, target, up, err);
    for (int k = 0; k < 12; k++)
        c2w[k] = (float)m[k];
    return rc;
}

/* Renders frames (orbit or a dataset's views) into a folder of PNGs, or an .mp4 through
 * ffmpeg. */
static int render_sequence(nerf_trainer *t,
                           const nerf_dataset *ds,
                           int64_t orbit,
                           int64_t w,
                           int64_t h,
                           double radius,
                           int depth_out,
                           const char *out,
                           eng_err *err) {
    int rc = ENG_OK;
    const int video = strlen(out) > 4 && strcmp(out + strlen(out) - 4, ".mp4") == 0;
    const int64_t n = ds != NULL ? nerf_dataset_count(ds) : orbit;
    if (ds != NULL) w = nerf_dataset_width(ds), h = nerf_dataset_height(ds);
    float *rgb = (float *)malloc((size_t)(w * h * 3) * sizeof *rgb);
    float *depth = (float *)malloc((size_t)(w * h) * sizeof *depth);
    uint8_t *bytes = (uint8_t *)malloc((size_t)(w * h * 3));
    FILE *pipe = NULL;
    char path[4200];
    eng_progress *bar = NULL;
    if (rgb == NULL || depth == NULL || bytes == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "nerf render: out of memory");
        goto done;
    }
    if (video) {
        if (system("ffmpeg -version > /dev/null 2>&1") != 0) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "nerf render: %s: ffmpeg is not installed (apt-get install ffmpeg), "
                             "or give a folder to get PNG frames",
                             out);
            goto done;
        }
        snprintf(path, sizeof path,
                 "ffmpeg -loglevel error -y -f rawvideo -pix_fmt rgb24 -s %lldx%lld -r 30 -i - "
                 "-pix_fmt yuv420p '%s'",
                 (long long)w, (long long)h, out);
        if ((pipe = popen(path, "w")) == NULL) {
            rc = eng_err_set(err, ENG_E_IO, "nerf render: cannot start ffmpeg");
            goto done;
        }
    } else if (mkdir_p(out) != 0) {
        rc = eng_err_set(err, ENG_E_IO, "nerf render: cannot create %s", out);
        goto done;
    }
    eng_progress_params pp;
    eng_progress_params_init(&pp);
    pp.label = "render";
    pp.total = n;
    pp.unit = "frame";
    if (eng_progress_create(&bar, &pp, NULL) != ENG_OK) bar = NULL;
    const float white[3] = {1, 1, 1};
    const double fov = 0.6911112070083618; /* NeRF-synthetic's camera_angle_x */
    nerf_intrinsics in = {0};
    in.fx = in.fy = (float)(0.5 * (double)w / tan(0.5 * fov));
    in.cx = 0.5f * (float)w, in.cy = 0.5f * (float)h;
    for (int64_t i = 0; i < n; i++) {
        float c2w[12];
        if (ds != NULL) {
            rc = nerf_trainer_render_frame(t, rgb, depth, ds, i, white, err);
        } else if ((rc = orbit_camera(c2w, i, n, radius, 0.5, err)) == ENG_OK) {
            rc = nerf_trainer_render(t, rgb, depth, c2w, &in, w, h, white, err);
        }
        if (rc != ENG_OK) break;
        if (pipe != NULL) {
            for (int64_t k = 0; k < w * h * 3; k++)
                bytes[k] = (uint8_t)lrintf((rgb[k] < 0 ? 0 : rgb[k] > 1 ? 1 : rgb[k]) * 255.0f);
            if (fwrite(bytes, 1, (size_t)(w * h * 3), pipe) != (size_t)(w * h * 3)) {
                rc = eng_err_set(err, ENG_E_IO, "nerf render: ffmpeg stopped reading");
                break;
            }
        } else {
            snprintf(path, sizeof path, "%s/frame_%04lld.png", out, (long long)i);
            if ((rc = write_rgb(path, rgb, w, h, err)) != ENG_OK) break;
            snprintf(path, sizeof path, "%s/depth_%04lld.png", out, (long long)i);
            if (depth_out && (rc = write_depth(path, depth, w, h, err)) != ENG_OK) break;
        }
        if (bar != NULL) eng_progress_add(bar, 1, NULL);
    }
    if (bar != NULL) eng_progress_finish(bar, NULL);
done:
    if (pipe != NULL && pclose(pipe) != 0 && rc == ENG_OK)
        rc = eng_err_set(err, ENG_E_IO, "nerf render: ffmpeg failed writing %s", out);
    eng_progress_destroy(bar);
    free(rgb), free(depth), free(bytes);
    return rc;
}

static const char render_usage[] =
    "usage: nerf render SNAPSHOT (--transforms FILE | --orbit N) [-W W -H H]\n"
    "                   [--radius R] [--no-depth] [--device cpu|cuda] -o DIR|video.mp4\n"
    "Renders a dataset's views or N views on a circle around the scene (30 degrees\n"
    "up) on white: DIR gets frame_NNNN.png and depth_NNNN.png (near is bright); a\n"
    "name ending in .mp4 makes a 30 fps video with ffmpeg.\n";

int nerf_cmd_render(int argc, char **argv) {
    const char *snap = NULL, *transforms = NULL, *out = NULL, *device = "cpu";
    int64_t orbit = 0, w = 800, h = 800, threads = 0;
    double radius = 0;
    int no_depth = 0, n_pos = 0;
    const eng_cli_opt opts[] = {
        {"--device", NULL, ENG_CLI_STR, &device, 0, 0},
        {"--transforms", NULL, ENG_CLI_STR, &transforms, 0, 0},
        {"-o", "--out", ENG_CLI_STR, &out, 0, 0},
        {"--orbit", NULL, ENG_CLI_INT, &orbit, 1, 100000},
        {"-W", "--width", ENG_CLI_INT, &w, 1, 16384},
        {"-H", "--height", ENG_CLI_INT, &h, 1, 16384},
        {"--radius", NULL, ENG_CLI_FLOAT, &radius, 1e-3, 1e4},
        {"--no-depth", NULL, ENG_CLI_FLAG, &no_depth, 0, 0},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
    };
    const int pr =
        parse_cmd("render", render_usage, argc, argv, opts, N_OPTS(opts), &snap, 1, &n_pos);
    if (pr >= 0) return pr;
    const int depth = !no_depth;
    if (snap == NULL || out == NULL || (transforms == NULL) == (orbit == 0)) {
        fprintf(stderr, "nerf render: give SNAPSHOT, -o, and one of --transforms / --orbit\n");
        return 2;
    }
    cmd_env e;
    int st = env_open(&e, threads, device);
    if (st != 0) return st;
    nerf_trainer *t = NULL;
    nerf_dataset *ds = NULL;
    int status = 1;
    if (nerf_trainer_load(&t, e.ctx, snap, &e.err) == ENG_OK &&
        nerf_trainer_set_device(t, device_kind(device), &e.err) == ENG_OK &&
        (transforms == NULL || load_dataset(&ds, e.ctx, transforms, "test", &e.err) == ENG_OK)) {
        const nerf_field_params *fp = &nerf_trainer_get_params(t)->field;
        /* the scene box's side (contracted: grid.aabb_scale is the contracted cube's) */
        const float aabb = fp->contract ? 2.0f * fp->inner_radius : fp->grid.aabb_scale;
        if (radius <= 0) radius = 1.3 * aabb;
        if (render_sequence(t, ds, orbit, w, h, radius, depth, out, &e.err) == ENG_OK) {
            printf("wrote %s\n", out);
            status = 0;
        }
    }
    if (status != 0) fprintf(stderr, "nerf render: %s\n", e.err.msg);
    nerf_dataset_destroy(ds);
    nerf_trainer_destroy(t);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- mesh ----------------------------------------------------------------------------------- */

static int mesh_density(void *user, float *sigma, const float *pos, int64_t n, eng_err *err) {
    return nerf_trainer_density((nerf_trainer *)user, sigma, pos, n, err);
}

static int mesh_color(
    void *user, float *rgb, const float *pos, const float *normals, int64_t n, eng_err *err) {
    float *dir = (float *)malloc((size_t)(3 * (n > 0 ? n : 1)) * sizeof *dir);
    if (dir == NULL) return eng_err_set(err, ENG_E_OOM, "nerf mesh: out of memory");
    for (int64_t i = 0; i < 3 * n; i++) /* seen from outside: along -normal */
        dir[i] = -normals[i];
    for (int64_t i = 0; i < n; i++) {
        float *d = dir + 3 * i;
        if (d[0] == 0 && d[1] == 0 && d[2] == 0) d[2] = -1;
    }
    const int rc = nerf_trainer_color((nerf_trainer *)user, rgb, pos, dir, n, err);
    free(dir);
    return rc;
}

static int write_mesh(nerf_trainer *t, const char *out, int64_t res, double iso, eng_err *err) {
    nerf_mesh m = {0};
    nerf_mesh_params mp;
    nerf_mesh_params_init(&mp);
    const nerf_field_params *fp = &nerf_trainer_get_params(t)->field;
    /* the scene box, or with the contraction the uncontracted foreground (the inner cube) */
    const float half = fp->contract ? fp->inner_radius : 0.5f * fp->grid.aabb_scale;
    for (int a = 0; a < 3; a++)
        mp.box_lo[a] = 0.5f - half, mp.box_hi[a] = 0.5f + half;
    mp.res = (int)res;
    mp.iso = (float)iso;
    int rc = nerf_mesh_extract(&m, &mp, mesh_density, mesh_color, t, err);
    if (rc == ENG_OK) rc = nerf_mesh_write_ply(out, &m, err);
    if (rc == ENG_OK)
        printf("wrote %s: %lld vertices, %lld triangles\n", out, (long long)m.n_verts,
               (long long)m.n_tris);
    nerf_mesh_free(&m);
    return rc;
}

static const char mesh_usage[] =
    "usage: nerf mesh SNAPSHOT -o mesh.ply [--res 256] [--iso 2.5]\n"
    "Marching cubes of the density over the scene box (with the contraction: the\n"
    "uncontracted foreground cube), vertex colours from the colour network seen\n"
    "along the surface normal; binary PLY.\n";

int nerf_cmd_mesh(int argc, char **argv) {
    const char *snap = NULL, *out = NULL;
    int64_t res = 256, threads = 0;
    double iso = 2.5;
    int n_pos = 0;
    const eng_cli_opt opts[] = {
        {"-o", "--out", ENG_CLI_STR, &out, 0, 0},
        {"--res", NULL, ENG_CLI_INT, &res, 2, NERF_MESH_MAX_RES},
        {"--iso", NULL, ENG_CLI_FLOAT, &iso, 0, 1e6},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
    };
    const int pr = parse_cmd("mesh", mesh_usage, argc, argv, opts, N_OPTS(opts), &snap, 1, &n_pos);
    if (pr >= 0) return pr;
    if (snap == NULL || out == NULL) {
        fprintf(stderr, "nerf mesh: give SNAPSHOT and -o mesh.ply\n");
        return 2;
    }
    cmd_env e;
    int st = env_open(&e, threads, "cpu");
    if (st != 0) return st;
    nerf_trainer *t = NULL;
    int status = 1;
    if (nerf_trainer_load(&t, e.ctx, snap, &e.err) == ENG_OK &&
        write_mesh(t, out, res, iso, &e.err) == ENG_OK)
        status = 0;
    else
        fprintf(stderr, "nerf mesh: %s\n", e.err.msg);
    nerf_trainer_destroy(t);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- demo ----------------------------------------------------------------------------------- */

static const char demo_usage[] =
    "usage: nerf demo [--out DIR] [--steps 600] [--res 64] [--threads N]\n"
    "Ray-traces the built-in scene (four shapes) into 100 training and 20 test\n"
    "views, trains on them, evaluates the test views (PSNR, SSIM), and writes\n"
    "renders, a turntable and a mesh under DIR (default nerf-demo).\n";

int nerf_cmd_demo(int argc, char **argv) {
    const char *out = "nerf-demo";
    int64_t steps = 600, res = 64, threads = 0;
    int n_pos = 0;
    const eng_cli_opt opts[] = {
        {"--out", "-o", ENG_CLI_STR, &out, 0, 0},
        {"--steps", NULL, ENG_CLI_INT, &steps, 1, 1e7},
        {"--res", NULL, ENG_CLI_INT, &res, 16, 2048},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
    };
    const int pr = parse_cmd("demo", demo_usage, argc, argv, opts, N_OPTS(opts), NULL, 0, &n_pos);
    if (pr >= 0) return pr;
    cmd_env e;
    int st = env_open(&e, threads, "cpu");
    if (st != 0) return st;
    char scene[4200], path[4300];
    nerf_dataset *train = NULL, *test = NULL;
    nerf_trainer *t = NULL;
    eng_progress *bar = NULL;
    int status = 1;
    const double t0 = eng_bench_now_s();
    snprintf(scene, sizeof scene, "%s/scene", out);
    nerf_scene_params sp;
    nerf_scene_params_init(&sp);
    sp.width = sp.height = res;
    printf("nerf demo: ray-tracing the built-in scene into %lld+%lld views of %lldx%lld (%s)\n",
           (long long)sp.n_train, (long long)sp.n_test, (long long)res, (long long)res, scene);
    fflush(stdout);
    if (mkdir_p(out) != 0) {
        eng_err_set(&e.err, ENG_E_IO, "cannot create %s", out);
        goto fail;
    }
    if (nerf_scene_write(scene, &sp, e.ctx, &e.err) != ENG_OK ||
        load_dataset(&train, e.ctx, scene, "train", &e.err) != ENG_OK ||
        load_dataset(&test, e.ctx, scene, "test", &e.err) != ENG_OK)
        goto fail;
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    if (nerf_trainer_create(&t, e.ctx, train, &tp, &e.err) != ENG_OK) goto fail;
    eng_progress_params pp;
    eng_progress_params_init(&pp);
    pp.label = "train";
    pp.total = steps;
    pp.unit = "step";
    if (eng_progress_create(&bar, &pp, &e.err) != ENG_OK) goto fail;
    const double t1 = eng_bench_now_s();
    double rays = 0;
    for (int64_t i = 0; i < steps; i++) {
        nerf_step_stats s;
        if (nerf_trainer_step(t, &s, &e.err) != ENG_OK) goto fail;
        rays += (double)s.rays;
        char suffix[128];
        snprintf(suffix, sizeof suffix, "loss %.5f psnr %.2f %.0f rays/s", s.loss, s.psnr,
                 rays / (eng_bench_now_s() - t1));
        eng_progress_update(bar, s.step, suffix);
    }
    eng_progress_finish(bar, NULL);
    const double train_s = eng_bench_now_s() - t1;
    snprintf(path, sizeof path, "%s/demo.nerf", out);
    if (nerf_trainer_save(t, path, &e.err) != ENG_OK) goto fail;
    double psnr = 0, ssim = 0;
    snprintf(path, sizeof path, "%s/eval", out);
    if (evaluate(t, test, path, 1, 0, &psnr, &ssim, &e.err) != ENG_OK) goto fail;
    snprintf(path, sizeof path, "%s/turntable", out);
    if (render_sequence(t, NULL, 36, 2 * res, 2 * res, 1.3, 0, path, &e.err) != ENG_OK) goto fail;
    snprintf(path, sizeof path, "%s/mesh.ply", out);
    if (write_mesh(t, path, 128, 2.5, &e.err) != ENG_OK) goto fail;
    printf("nerf demo: %lld steps in %.1f s; test views: PSNR %.2f dB, SSIM %.4f\n",
           (long long)steps, train_s, psnr, ssim);
    printf("nerf demo: wrote %s/demo.nerf, %s/eval/ (renders, metrics.json), %s/turntable/, "
           "%s/mesh.ply in %.1f s in all\n",
           out, out, out, out, eng_bench_now_s() - t0);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "nerf demo: %s\n", e.err.msg);
done:
    eng_progress_destroy(bar);
    nerf_trainer_destroy(t);
    nerf_dataset_destroy(test);
    nerf_dataset_destroy(train);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- bench ---------------------------------------------------------------------------------- */

static const char bench_usage[] =
    "usage: nerf bench [--scene DIR] [--steps 100] [--device cpu|cuda] [--threads N]\n"
    "Times training (rays/s, samples/s) on a scene (default: the built-in one at\n"
    "128x128) after a 50-step warm-up, then the time of one 1920x1080 render.\n";

int nerf_cmd_bench(int argc, char **argv) {
    const char *scene_arg = NULL, *device = "cpu";
    int64_t steps = 100, threads = 0;
    int n_pos = 0;
    const eng_cli_opt opts[] = {
        {"--device", NULL, ENG_CLI_STR, &device, 0, 0},
        {"--scene", NULL, ENG_CLI_STR, &scene_arg, 0, 0},
        {"--steps", NULL, ENG_CLI_INT, &steps, 1, 1e6},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
    };
    const int pr = parse_cmd("bench", bench_usage, argc, argv, opts, N_OPTS(opts), NULL, 0, &n_pos);
    if (pr >= 0) return pr;
    cmd_env e;
    int st = env_open(&e, threads, device);
    if (st != 0) return st;
    char scene[4200];
    nerf_dataset *ds = NULL;
    nerf_trainer *t = NULL;
    float *rgb = NULL;
    int status = 1;
    if (scene_arg == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scene, sizeof scene, "%s/nerf-bench-scene.%ld", tmp != NULL ? tmp : "/tmp",
                 (long)getpid());
        nerf_scene_params sp;
        nerf_scene_params_init(&sp);
        if (nerf_scene_write(scene, &sp, e.ctx, &e.err) != ENG_OK) goto fail;
        scene_arg = scene;
    }
    if (load_dataset(&ds, e.ctx, scene_arg, "train", &e.err) != ENG_OK) goto fail;
    nerf_train_params tp;
    nerf_train_params_init(&tp);
    tp.device = device_kind(device);
    if (tp.device == ENG_DEVICE_CUDA) tp.target_samples = NERF_CUDA_TARGET_SAMPLES;
    if (nerf_trainer_create(&t, e.ctx, ds, &tp, &e.err) != ENG_OK) goto fail;
    for (int i = 0; i < 50; i++)
        if (nerf_trainer_step(t, NULL, &e.err) != ENG_OK) goto fail;
    double rays = 0, samples = 0;
    const double t0 = eng_bench_now_s();
    for (int64_t i = 0; i < steps; i++) {
        nerf_step_stats s;
        if (nerf_trainer_step(t, &s, &e.err) != ENG_OK) goto fail;
        rays += (double)s.rays, samples += (double)s.samples;
    }
    const double dt = eng_bench_now_s() - t0;
    char dev_name[256] = "CPU";
    if (tp.device == ENG_DEVICE_CUDA) eng_cuda_describe(dev_name, sizeof dev_name);
    printf("nerf bench: %s, %d threads (%s)\n", scene_arg, eng_ctx_threads(e.ctx), dev_name);
    printf("training: %lld steps in %.2f s: %.0f rays/s, %.0f samples/s, %.1f ms/step\n",
           (long long)steps, dt, rays / dt, samples / dt, 1000.0 * dt / (double)steps);
    const int64_t w = 1920, h = 1080;
    if ((rgb = (float *)malloc((size_t)(w * h * 3) * sizeof *rgb)) == NULL) {
        eng_err_set(&e.err, ENG_E_OOM, "out of memory");
        goto fail;
    }
    float c2w[12];
    nerf_intrinsics in = {0};
    in.fx = in.fy = (float)(0.5 * (double)w / tan(0.5 * 0.6911112070083618));
    in.cx = 0.5f * (float)w, in.cy = 0.5f * (float)h;
    const float white[3] = {1, 1, 1};
    if (orbit_camera(c2w, 0, 8, 1.3 * nerf_dataset_aabb_scale(ds), 0.5, &e.err) != ENG_OK)
        goto fail;
    const double r0 = eng_bench_now_s();
    if (nerf_trainer_render(t, rgb, NULL, c2w, &in, w, h, white, &e.err) != ENG_OK) goto fail;
    printf("render 1920x1080: %.1f ms (after %lld training steps)\n",
           1000.0 * (eng_bench_now_s() - r0), (long long)nerf_trainer_step_count(t));
    status = 0;
    goto done;
fail:
    fprintf(stderr, "nerf bench: %s\n", e.err.msg);
done:
    free(rgb);
    nerf_trainer_destroy(t);
    nerf_dataset_destroy(ds);
    eng_ctx_destroy(e.ctx);
    return status;
}

/* ---- import-colmap -------------------------------------------------------------------------- */

int nerf_cmd_import_colmap(int argc, char **argv) {
    eng_err err = {0};
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        puts("usage: nerf import-colmap SPARSE_DIR IMAGES_DIR OUT_JSON\n"
             "Converts a COLMAP text model (cameras.txt, images.txt in SPARSE_DIR) into an\n"
             "instant-ngp transforms.json (centred, scaled, z up) whose frames point into\n"
             "IMAGES_DIR.");
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: nerf import-colmap SPARSE_DIR IMAGES_DIR OUT_JSON\n");
        return 2;
    }
    if (nerf_colmap_import(argv[1], argv[2], argv[3], &err) != ENG_OK) {
        fprintf(stderr, "nerf import-colmap: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s\n", argv[3]);
    return 0;
}
