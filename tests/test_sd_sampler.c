/* test_sd_sampler.c: the samplers (diffusion/sd_sampler.h) against diffusers 0.42.1.
 *
 * golden_<sampler>: replays every case of tests/golden/sd_sampler_diffusers.txt
 * (tests/gen_sd_sampler_goldens.py) for that sampler: the same SD 1.5 scheduler config, the same
 * 72-float latent, analytic fake model and analytic noise (formulas below, identical to the
 * generator's), the pipeline loop of diffusers' StableDiffusionPipeline / Img2ImgPipeline. It
 * checks the call count, init sigma, every timestep and input scale, the img2img latents after
 * add_noise, and the latents after the recorded calls: |x - golden| <= 2e-5 * max|golden|
 * (measured: about 1e-6 and below; float32 ulp-level differences of libm against torch).
 * names: parse round trips, aliases, A1111 names. errors: bad names, steps, strength, config,
 * Karras where diffusers has none, calls out of order, missing noise (each a named error).
 * plan: call counts, noise needs and timesteps of the plan (Heun's interleaving, img2img
 * truncation, LCM's schedule), and finite results for every sampler at 1 and 50 steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_test.h"
#include "sd_sampler.h"

#define GOLDEN_FILE ENG_TEST_SOURCE_DIR "/golden/sd_sampler_diffusers.txt"
#define N           72
#define MAX_CALLS   64
/* latents: relative to the largest golden magnitude of the compared vector */
#define X_TOL 2e-5
/* init sigma, input scales: float32 values computed the same way */
#define SCALE_RTOL 1e-6
/* fractional (Karras) timesteps, float32 values: measured 3e-5 (an ulp of a float32 near 500;
 * numpy's float32 log may differ from the C library's by an ulp); integers are exact. */
#define TIMESTEP_ATOL 2e-4

/* ---- the generator's formulas (float64, then float32) ------------------------------------- */

static float noise0(int j) {
    return (float)(1.1 * sin(0.9 * j + 0.3) + 0.2 * cos(2.3 * j));
}
static float image_latent(int j) {
    return (float)(0.8 * cos(0.37 * j + 0.5));
}
static float step_noise(int64_t i, int j) {
    return (float)(1.2 * sin(1.3 * j + 2.1 * (double)i + 0.7));
}
static float fake_model(float x_in, double t, int j) {
    return (float)(0.3 * tanh((double)x_in) + 1e-5 * t * cos(0.5 * j));
}

/* ---- golden file ------------------------------------------------------------------------- */

typedef struct golden_case {
    char name[64], sampler[16], schedule[16], pred[16], spacing[16], beta[24];
    int steps;
    double strength;
    int64_t count;
    double init_sigma;
    double timesteps[MAX_CALLS], scales[MAX_CALLS];
    int has_x_init;
    float x_init[N];
    int nx;            /* recorded calls */
    int64_t x_call[4]; /* their indices */
    float x[4][N];     /* the latents after them */
} golden_case;

static int read_floats(char *p, float *out, int count) {
    for (int k = 0; k < count; k++) {
        char *end = NULL;
        out[k] = strtof(p, &end);
        if (end == p) return 1;
        p = end;
    }
    return 0;
}

static int read_doubles(char *p, double *out, int64_t count) {
    for (int64_t k = 0; k < count; k++) {
        char *end = NULL;
        out[k] = strtod(p, &end);
        if (end == p) return 1;
        p = end;
    }
    return 0;
}

/* Reads the next case of f into *c; returns 1 on a case, 0 at the end of the file, -1 if
 * malformed. */
static int next_case(FILE *f, golden_case *c) {
    static char line[8192];
    int in_case = 0;
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (strncmp(line, "case ", 5) == 0) {
            if (sscanf(line + 5, "%63s %15s %15s %15s %d %lf %15s %23s", c->name, c->sampler,
                       c->schedule, c->pred, &c->steps, &c->strength, c->spacing, c->beta) != 8)
                return -1;
            if (strcmp(c->spacing, "-") == 0) c->spacing[0] = '\0';
            in_case = 1;
        } else if (!in_case) {
            return -1;
        } else if (strncmp(line, "count ", 6) == 0) {
            c->count = strtoll(line + 6, NULL, 10);
            if (c->count < 1 || c->count > MAX_CALLS) return -1;
        } else if (strncmp(line, "init_sigma ", 11) == 0) {
            c->init_sigma = strtod(line + 11, NULL);
        } else if (strncmp(line, "timesteps ", 10) == 0) {
            if (read_doubles(line + 10, c->timesteps, c->count)) return -1;
        } else if (strncmp(line, "scales ", 7) == 0) {
            if (read_doubles(line + 7, c->scales, c->count)) return -1;
        } else if (strncmp(line, "x_init ", 7) == 0) {
            if (read_floats(line + 7, c->x_init, N)) return -1;
            c->has_x_init = 1;
        } else if (strncmp(line, "x ", 2) == 0) {
            char *end = NULL;
            if (c->nx >= 4) return -1;
            c->x_call[c->nx] = strtoll(line + 2, &end, 10);
            if (read_floats(end, c->x[c->nx], N)) return -1;
            c->nx++;
        } else if (strncmp(line, "end", 3) == 0) {
            return 1;
        } else {
            return -1;
        }
    }
    return in_case ? -1 : 0;
}

/* max |a - b| over max |b|, with the worst index. */
static double rel_err(const float *a, const float *b, int n, int *worst) {
    double m = 0, e = 0;
    *worst = 0;
    for (int j = 0; j < n; j++) {
        if (fabs((double)b[j]) > m) m = fabs((double)b[j]);
        const double d = fabs((double)a[j] - (double)b[j]);
        if (!(d <= e)) { /* NaN wins */
            e = d;
            *worst = j;
        }
    }
    return e / (m > 0 ? m : 1.0);
}

static int run_case(const golden_case *c, double *worst_seen, double *worst_t) {
    eng_err err = {0};
    sd_sampler_kind kind;
    sd_schedule_kind sched;
    sd_scheduler_config cfg;
    sd_sampler *s = NULL;
    float x[N], out[N], xin[N], nz[N];
    int worst = 0;
    CHECK_OK(sd_sampler_parse(&kind, c->sampler, &err), &err);
    CHECK_OK(sd_schedule_parse(&sched, c->schedule, &err), &err);
    sd_scheduler_config_default(&cfg);
    cfg.prediction = strcmp(c->pred, "v") == 0 ? SD_PRED_V : SD_PRED_EPSILON;
    snprintf(cfg.timestep_spacing, sizeof cfg.timestep_spacing, "%s", c->spacing);
    snprintf(cfg.beta_schedule, sizeof cfg.beta_schedule, "%s", c->beta);
    if (strcmp(c->beta, "linear") == 0) cfg.beta_start = 0.0001, cfg.beta_end = 0.02;
    CHECK_OK(sd_sampler_create(&s, kind, sched, &cfg, c->steps, c->strength, N, &err), &err);

    int rc = 1;
    if (sd_sampler_count(s) != c->count) {
        fprintf(stderr, "%s: count %lld, diffusers %lld\n", c->name, (long long)sd_sampler_count(s),
                (long long)c->count);
        goto done;
    }
    if (fabs(sd_sampler_init_sigma(s) - c->init_sigma) > SCALE_RTOL * c->init_sigma) {
        fprintf(stderr, "%s: init sigma %.9g, diffusers %.9g\n", c->name, sd_sampler_init_sigma(s),
                c->init_sigma);
        goto done;
    }
    for (int64_t i = 0; i < c->count; i++) {
        const double t = sd_sampler_timestep(s, i), sc = sd_sampler_input_scale(s, i);
        const int integral = c->timesteps[i] == floor(c->timesteps[i]);
        if (fabs(t - c->timesteps[i]) > *worst_t) *worst_t = fabs(t - c->timesteps[i]);
        if (fabs(t - c->timesteps[i]) >
            (integral && sched == SD_SCHEDULE_NORMAL ? 0.0 : TIMESTEP_ATOL)) {
            fprintf(stderr, "%s: call %lld: timestep %.9g, diffusers %.9g\n", c->name, (long long)i,
                    t, c->timesteps[i]);
            goto done;
        }
        if (fabs(sc - c->scales[i]) > SCALE_RTOL * c->scales[i]) {
            fprintf(stderr, "%s: call %lld: input scale %.9g, diffusers %.9g\n", c->name,
                    (long long)i, sc, c->scales[i]);
            goto done;
        }
    }

    /* the starting latents */
    if (c->strength < 1.0) {
        for (int j = 0; j < N; j++) {
            x[j] = image_latent(j);
            nz[j] = noise0(j);
        }
        sd_sampler_add_noise(s, x, nz);
        if (!c->has_x_init) goto done;
        const double e = rel_err(x, c->x_init, N, &worst);
        if (!(e <= X_TOL)) {
            fprintf(stderr, "%s: add_noise: rel err %.3g at %d: %.9g vs diffusers %.9g\n", c->name,
                    e, worst, (double)x[worst], (double)c->x_init[worst]);
            goto done;
        }
    } else {
        const float init = (float)sd_sampler_init_sigma(s);
        for (int j = 0; j < N; j++)
            x[j] = noise0(j) * init;
    }

    /* the pipeline loop */
    int rec = 0;
    for (int64_t i = 0; i < c->count; i++) {
        const float scale = (float)sd_sampler_input_scale(s, i);
        const double t = c->timesteps[i]; /* the golden's, so only the sampler is compared */
        for (int j = 0; j < N; j++) {
            xin[j] = x[j] * scale;
            out[j] = fake_model(xin[j], t, j);
        }
        const int needs = sd_sampler_needs_noise(s, i);
        for (int j = 0; j < N; j++)
            nz[j] = step_noise(i, j);
        if (sd_sampler_step(s, i, x, out, needs ? nz : NULL, &err) != ENG_OK) {
            fprintf(stderr, "%s: call %lld: %s\n", c->name, (long long)i, err.msg);
            goto done;
        }
        if (rec < c->nx && c->x_call[rec] == i) {
            const double e = rel_err(x, c->x[rec], N, &worst);
            if (e > *worst_seen) *worst_seen = e;
            if (!(e <= X_TOL)) {
                fprintf(stderr,
                        "%s: after call %lld of %lld: rel err %.3g at %d: %.9g vs diffusers "
                        "%.9g\n",
                        c->name, (long long)i, (long long)c->count, e, worst, (double)x[worst],
                        (double)c->x[rec][worst]);
                goto done;
            }
            rec++;
        }
    }
    if (rec != c->nx) {
        fprintf(stderr, "%s: recorded call %lld not in the plan\n", c->name,
                (long long)c->x_call[rec]);
        goto done;
    }
    rc = 0;
done:
    sd_sampler_destroy(s);
    return rc;
}

/* Replays the golden cases of one sampler (CLI name). */
static int golden_for(const char *sampler) {
    FILE *f = fopen(GOLDEN_FILE, "r");
    golden_case *c = malloc(sizeof *c);
    int ran = 0, failed = 0, r;
    double worst = 0, worst_t = 0;
    CHECK(f != NULL && c != NULL);
    while ((r = next_case(f, c)) == 1) {
        if (strcmp(c->sampler, sampler) != 0) continue;
        ran++;
        if (run_case(c, &worst, &worst_t) != 0) {
            printf("  case %s FAILED\n", c->name);
            failed++;
        }
    }
    fclose(f);
    free(c);
    if (r < 0) {
        fprintf(stderr, "%s: malformed\n", GOLDEN_FILE);
        return 1;
    }
    printf("%s: %d golden cases, worst latent rel err %.3g, worst timestep err %.3g\n", sampler,
           ran, worst, worst_t);
    CHECK(ran > 0);
    return failed != 0;
}

static int test_golden_euler(void) {
    return golden_for("euler");
}
static int test_golden_euler_a(void) {
    return golden_for("euler_a");
}
static int test_golden_heun(void) {
    return golden_for("heun");
}
static int test_golden_ddim(void) {
    return golden_for("ddim");
}
static int test_golden_dpmpp_2m(void) {
    return golden_for("dpm++2m");
}
static int test_golden_lcm(void) {
    return golden_for("lcm");
}

/* ---- names ------------------------------------------------------------------------------- */

static int test_names(void) {
    eng_err err = {0};
    char buf[32];
    for (int k = 0; k < SD_SAMPLER_COUNT; k++) {
        sd_sampler_kind got = SD_SAMPLER_COUNT;
        CHECK_OK(sd_sampler_parse(&got, sd_sampler_name((sd_sampler_kind)k), &err), &err);
        CHECK_EQ_I64(got, k);
    }
    sd_sampler_kind k2 = SD_SAMPLER_EULER;
    CHECK_OK(sd_sampler_parse(&k2, "dpmpp_2m", &err), &err);
    CHECK_EQ_I64(k2, SD_SAMPLER_DPMPP_2M);
    CHECK_OK(sd_sampler_parse(&k2, "Euler_A", &err), &err);
    CHECK_EQ_I64(k2, SD_SAMPLER_EULER_A);
    CHECK(strcmp(sd_sampler_name(SD_SAMPLER_DPMPP_2M), "dpm++2m") == 0);
    CHECK(strcmp(sd_sampler_name(SD_SAMPLER_COUNT), "unknown") == 0);

    const char *normal_names[] = {"normal", "default", "discrete", "NORMAL"};
    for (int i = 0; i < 4; i++) {
        sd_schedule_kind sk = SD_SCHEDULE_KARRAS;
        CHECK_OK(sd_schedule_parse(&sk, normal_names[i], &err), &err);
        CHECK_EQ_I64(sk, SD_SCHEDULE_NORMAL);
    }
    sd_schedule_kind sk = SD_SCHEDULE_NORMAL;
    CHECK_OK(sd_schedule_parse(&sk, "karras", &err), &err);
    CHECK_EQ_I64(sk, SD_SCHEDULE_KARRAS);

    static const char *const a1111[SD_SAMPLER_COUNT] = {"Euler", "Euler a",  "Heun",
                                                        "DDIM",  "DPM++ 2M", "LCM"};
    for (int k = 0; k < SD_SAMPLER_COUNT; k++) {
        CHECK(strcmp(sd_sampler_a1111_name((sd_sampler_kind)k, SD_SCHEDULE_NORMAL, buf, sizeof buf),
                     a1111[k]) == 0);
    }
    CHECK(strcmp(sd_sampler_a1111_name(SD_SAMPLER_DPMPP_2M, SD_SCHEDULE_KARRAS, buf, sizeof buf),
                 "DPM++ 2M Karras") == 0);
    CHECK(strcmp(sd_sampler_a1111_name(SD_SAMPLER_EULER, SD_SCHEDULE_KARRAS, buf, sizeof buf),
                 "Euler Karras") == 0);
    CHECK(strcmp(sd_sampler_a1111_name(SD_SAMPLER_DPMPP_2M, SD_SCHEDULE_KARRAS, buf, 5), "DPM+") ==
          0); /* truncated, terminated */
    return 0;
}

/* ---- errors ------------------------------------------------------------------------------ */

static int expect_create_error(int code,
                               const char *needle,
                               sd_sampler_kind kind,
                               sd_schedule_kind sched,
                               const sd_scheduler_config *cfg,
                               int steps,
                               double strength,
                               int64_t n) {
    eng_err err = {0};
    sd_sampler *s = (sd_sampler *)&err; /* must come back NULL */
    const int rc = sd_sampler_create(&s, kind, sched, cfg, steps, strength, n, &err);
    if (rc != code || s != NULL) {
        fprintf(stderr, "expected code %d (%s), got %d: %s\n", code, needle, rc, err.msg);
        sd_sampler_destroy(s == (sd_sampler *)&err ? NULL : s);
        return 1;
    }
    CHECK_EQ_I64(err.code, code);
    CHECK_CONTAINS(err.msg, "sd_sampler_create");
    CHECK_CONTAINS(err.msg, needle);
    return 0;
}

static int test_errors(void) {
    eng_err err = {0};
    sd_sampler_kind k = SD_SAMPLER_EULER;
    sd_schedule_kind sk = SD_SCHEDULE_NORMAL;
    CHECK_EQ_I64(sd_sampler_parse(&k, "dpm++3m", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dpm++3m");
    CHECK_CONTAINS(err.msg, "euler_a");
    CHECK_EQ_I64(sd_sampler_parse(&k, "", &err), ENG_E_INVALID_ARG);
    CHECK_EQ_I64(sd_sampler_parse(&k, NULL, &err), ENG_E_INVALID_ARG);
    CHECK_EQ_I64(sd_schedule_parse(&sk, "exponential", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "exponential");
    CHECK_CONTAINS(err.msg, "karras");

    const sd_scheduler_config *d = NULL; /* the default config */
    int bad = 0;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "steps 0", SD_SAMPLER_EULER, SD_SCHEDULE_NORMAL,
                               d, 0, 1.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "steps 1001", SD_SAMPLER_DDIM, SD_SCHEDULE_NORMAL,
                               d, 1001, 1.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "strength 0", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, d, 10, 0.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "strength 1.5", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, d, 10, 1.5, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "strength nan", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, d, 10, NAN, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "leaves no step", SD_SAMPLER_DPMPP_2M,
                               SD_SCHEDULE_NORMAL, d, 10, 0.05, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "latent size 0", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, d, 10, 1.0, 0);
    bad |= expect_create_error(ENG_E_UNSUPPORTED, "euler_a has no Karras", SD_SAMPLER_EULER_A,
                               SD_SCHEDULE_KARRAS, d, 10, 1.0, N);
    bad |= expect_create_error(ENG_E_UNSUPPORTED, "ddim has no Karras", SD_SAMPLER_DDIM,
                               SD_SCHEDULE_KARRAS, d, 10, 1.0, N);
    bad |= expect_create_error(ENG_E_UNSUPPORTED, "lcm has no Karras", SD_SAMPLER_LCM,
                               SD_SCHEDULE_KARRAS, d, 4, 1.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "steps 51", SD_SAMPLER_LCM, SD_SCHEDULE_NORMAL, d,
                               51, 1.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "sampler kind 6", SD_SAMPLER_COUNT,
                               SD_SCHEDULE_NORMAL, d, 10, 1.0, N);
    bad |= expect_create_error(ENG_E_INVALID_ARG, "schedule kind 2", SD_SAMPLER_EULER,
                               SD_SCHEDULE_COUNT, d, 10, 1.0, N);
    /* DDIM leading with 1000 steps and steps_offset 1 reaches timestep 1000 (diffusers would
     * index past alphas_cumprod) */
    bad |= expect_create_error(ENG_E_INVALID_ARG, "timestep 1000", SD_SAMPLER_DDIM,
                               SD_SCHEDULE_NORMAL, d, 1000, 1.0, N);
    /* DPM++ with 1000 linspace steps repeats a timestep: diffusers' h = 0 gives NaN */
    bad |= expect_create_error(ENG_E_INVALID_ARG, "repeat timestep", SD_SAMPLER_DPMPP_2M,
                               SD_SCHEDULE_NORMAL, d, 1000, 1.0, N);

    sd_scheduler_config c;
    sd_scheduler_config_default(&c);
    snprintf(c.beta_schedule, sizeof c.beta_schedule, "%s", "squaredcos_cap_v2");
    bad |= expect_create_error(ENG_E_UNSUPPORTED, "squaredcos_cap_v2", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 10, 1.0, N);
    sd_scheduler_config_default(&c);
    snprintf(c.timestep_spacing, sizeof c.timestep_spacing, "%s", "sideways");
    bad |= expect_create_error(ENG_E_INVALID_ARG, "sideways", SD_SAMPLER_EULER, SD_SCHEDULE_NORMAL,
                               &c, 10, 1.0, N);
    sd_scheduler_config_default(&c);
    c.num_train_timesteps = 1;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "num_train_timesteps 1", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 1, 1.0, N);
    sd_scheduler_config_default(&c);
    c.beta_end = 1.5;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "beta_end 1.5", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 10, 1.0, N);
    sd_scheduler_config_default(&c);
    c.num_train_timesteps = 100000;
    c.beta_end = 0.5;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "underflows", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 10, 1.0, N);
    sd_scheduler_config_default(&c);
    c.steps_offset = -1;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "steps_offset -1", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 10, 1.0, N);
    sd_scheduler_config_default(&c);
    c.prediction = SD_PRED_COUNT;
    bad |= expect_create_error(ENG_E_INVALID_ARG, "prediction 2", SD_SAMPLER_EULER,
                               SD_SCHEDULE_NORMAL, &c, 10, 1.0, N);
    CHECK(bad == 0);

    /* steps out of order, past the end, without the noise they need */
    sd_sampler *s = NULL;
    float x[N] = {0}, m[N] = {0}, nz[N] = {0};
    CHECK_OK(sd_sampler_create(&s, SD_SAMPLER_EULER_A, SD_SCHEDULE_NORMAL, NULL, 2, 1.0, N, &err),
             &err);
    CHECK_EQ_I64(sd_sampler_step(s, 1, x, m, nz, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "sd_sampler_step");
    CHECK_CONTAINS(err.msg, "call 1 out of order (expected call 0 of 2)");
    CHECK_EQ_I64(sd_sampler_step(s, 0, x, m, NULL, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "needs noise");
    CHECK_OK(sd_sampler_step(s, 0, x, m, nz, &err), &err);
    CHECK_EQ_I64(sd_sampler_step(s, 0, x, m, nz, &err), ENG_E_INVALID_ARG); /* again */
    CHECK_OK(sd_sampler_step(s, 1, x, m, nz, &err), &err);
    CHECK_EQ_I64(sd_sampler_step(s, 2, x, m, nz, &err), ENG_E_INVALID_ARG); /* past the end */
    CHECK_CONTAINS(err.msg, "of 2");
    sd_sampler_destroy(s);
    sd_sampler_destroy(NULL);
    return 0;
}

/* ---- plan -------------------------------------------------------------------------------- */

static int test_plan(void) {
    eng_err err = {0};
    sd_sampler *s = NULL;

    /* Heun: 2 calls per step but one on the first; img2img starts on a first-order call */
    CHECK_OK(sd_sampler_create(&s, SD_SAMPLER_HEUN, SD_SCHEDULE_NORMAL, NULL, 10, 1.0, N, &err),
             &err);
    CHECK_EQ_I64(sd_sampler_count(s), 19);
    CHECK(sd_sampler_timestep(s, 0) == 999.0 && sd_sampler_timestep(s, 1) == 888.0 &&
          sd_sampler_timestep(s, 2) == 888.0 && sd_sampler_timestep(s, 18) == 0.0);
    CHECK(sd_sampler_input_scale(s, 1) == sd_sampler_input_scale(s, 2));
    CHECK(!sd_sampler_needs_noise(s, 0));
    sd_sampler_destroy(s);
    CHECK_OK(sd_sampler_create(&s, SD_SAMPLER_HEUN, SD_SCHEDULE_NORMAL, NULL, 10, 0.5, N, &err),
             &err);
    CHECK_EQ_I64(sd_sampler_count(s), 9); /* t_start 5: calls 10..18 */
    CHECK(sd_sampler_timestep(s, 0) == 444.0);
    sd_sampler_destroy(s);

    /* LCM: 4 steps of the 50-step distillation schedule; noise on all but the last */
    CHECK_OK(sd_sampler_create(&s, SD_SAMPLER_LCM, SD_SCHEDULE_NORMAL, NULL, 4, 1.0, N, &err),
             &err);
    CHECK_EQ_I64(sd_sampler_count(s), 4);
    const double lcm_ts[4] = {999, 759, 499, 259};
    for (int i = 0; i < 4; i++) {
        CHECK(sd_sampler_timestep(s, i) == lcm_ts[i]);
        CHECK(sd_sampler_input_scale(s, i) == 1.0);
        CHECK_EQ_I64(sd_sampler_needs_noise(s, i), i < 3);
    }
    CHECK(sd_sampler_init_sigma(s) == 1.0);
    sd_sampler_destroy(s);

    /* DDIM: leading spacing with steps_offset 1 */
    CHECK_OK(sd_sampler_create(&s, SD_SAMPLER_DDIM, SD_SCHEDULE_NORMAL, NULL, 50, 1.0, N, &err),
             &err);
    CHECK(sd_sampler_timestep(s, 0) == 981.0 && sd_sampler_timestep(s, 49) == 1.0);
    sd_sampler_destroy(s);

    /* DPM++ 2M Karras: integer timesteps; img2img keeps the last int(steps * strength) */
    CHECK_OK(
        sd_sampler_create(&s, SD_SAMPLER_DPMPP_2M, SD_SCHEDULE_KARRAS, NULL, 25, 0.75, N, &err),
        &err);
    CHECK_EQ_I64(sd_sampler_count(s), 18);
    for (int64_t i = 0; i < sd_sampler_count(s); i++) {
        const double t = sd_sampler_timestep(s, i);
        CHECK(t == floor(t) && t >= 0 && t < 1000);
        CHECK(!sd_sampler_needs_noise(s, i));
    }
    sd_sampler_destroy(s);

    /* every sampler and schedule runs 1 and 50 steps to finite latents */
    for (int k = 0; k < SD_SAMPLER_COUNT; k++) {
        for (int sc = 0; sc < SD_SCHEDULE_COUNT; sc++) {
            const int karras_ok =
                k == SD_SAMPLER_EULER || k == SD_SAMPLER_HEUN || k == SD_SAMPLER_DPMPP_2M;
            if (sc == SD_SCHEDULE_KARRAS && !karras_ok) continue;
            for (int pass = 0; pass < 2; pass++) {
                const int steps = pass == 0 ? 1 : 50;
                float x[N], m[N], nz[N];
                CHECK_OK(sd_sampler_create(&s, (sd_sampler_kind)k, (sd_schedule_kind)sc, NULL,
                                           steps, 1.0, N, &err),
                         &err);
                const float init = (float)sd_sampler_init_sigma(s);
                for (int j = 0; j < N; j++)
                    x[j] = noise0(j) * init;
                for (int64_t i = 0; i < sd_sampler_count(s); i++) {
                    const float scale = (float)sd_sampler_input_scale(s, i);
                    CHECK(scale > 0.0f && scale <= 1.0f);
                    for (int j = 0; j < N; j++) {
                        m[j] = fake_model(x[j] * scale, sd_sampler_timestep(s, i), j);
                        nz[j] = step_noise(i, j);
                    }
                    CHECK_OK(sd_sampler_step(s, i, x, m, nz, &err), &err);
                }
                for (int j = 0; j < N; j++) {
                    if (!isfinite(x[j]) || fabsf(x[j]) > 100.0f) {
                        fprintf(stderr, "%s %s %d steps: x[%d] = %g\n",
                                sd_sampler_name((sd_sampler_kind)k),
                                sc == SD_SCHEDULE_KARRAS ? "karras" : "normal", steps, j,
                                (double)x[j]);
                        sd_sampler_destroy(s);
                        return 1;
                    }
                }
                sd_sampler_destroy(s);
                s = NULL;
            }
        }
    }
    return 0;
}

static const eng_test_case cases[] = {
    {"golden_euler", test_golden_euler},
    {"golden_euler_a", test_golden_euler_a},
    {"golden_heun", test_golden_heun},
    {"golden_ddim", test_golden_ddim},
    {"golden_dpmpp_2m", test_golden_dpmpp_2m},
    {"golden_lcm", test_golden_lcm},
    {"names", test_names},
    {"errors", test_errors},
    {"plan", test_plan},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
