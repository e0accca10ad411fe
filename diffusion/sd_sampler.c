/* sd_sampler.c: diffusers 0.42.1's Euler, Euler ancestral, Heun, DDIM, DPM++ 2M and LCM
 * schedulers (diffusers/schedulers/scheduling_*.py), re-derived as float loops.
 *
 * Precision: diffusers builds the training schedule in float32 torch (betas by torch.linspace,
 * alphas_cumprod by torch.cumprod), turns it into inference timesteps and sigmas in float64 numpy,
 * stores those as float32 tensors, and steps in float32 with one rounding per tensor operation.
 * Each of those is mirrored here: `float` where torch works in float32 (one operation per
 * statement, in diffusers' order: a scalar coefficient is rounded before it meets the tensor),
 * `double` where numpy works in float64. Compiled without FP contraction (C11 mode has it off in
 * GCC; clang gets the pragma below), so every float operation rounds once, as torch's do. */
#include "sd_sampler.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* LCMScheduler defaults (not in SD 1.5's scheduler_config.json). */
#define LCM_ORIGINAL_STEPS    50
#define LCM_TIMESTEP_SCALING  10.0f
#define LCM_SIGMA_DATA_SQUARE 0.25f /* sigma_data 0.5, squared */
#define KARRAS_RHO            7.0

typedef enum spacing { SPACING_LINSPACE, SPACING_LEADING, SPACING_TRAILING } spacing;

struct sd_sampler {
    sd_sampler_kind kind;
    sd_schedule_kind sched;
    sd_prediction pred;
    int64_t n;             /* floats per latent */
    int steps;             /* requested (num_inference_steps) */
    int train;             /* num_train_timesteps */
    float *alphas_cumprod; /* (train) */
    float final_alpha_cumprod;
    int64_t full;       /* model calls of the whole schedule (len(scheduler.timesteps)) */
    int64_t begin;      /* the plan's first call in the whole schedule (img2img: t_start*order) */
    double *timesteps;  /* (full) what the UNet gets */
    float *sigmas;      /* (full + 1) Euler, Euler a, Heun, DPM++; NULL for DDIM and LCM */
    float init_sigma;   /* init_noise_sigma */
    int64_t next;       /* the next plan call sd_sampler_step expects */
    float *state_a;     /* (n) Heun: prev_derivative; DPM++: the previous x0 prediction */
    float *state_b;     /* (n) Heun: the sample of the first-order half */
    float heun_dt;      /* Heun: dt of the pending first-order half */
    int heun_pending;   /* Heun: 1 when the next call is the second-order correction */
    int dpm_lower_nums; /* DPM++: lower_order_nums */
};

static const char *const sampler_names[SD_SAMPLER_COUNT] = {"euler", "euler_a", "heun",
                                                            "ddim",  "dpm++2m", "lcm"};
static const char *const sampler_a1111[SD_SAMPLER_COUNT] = {"Euler", "Euler a",  "Heun",
                                                            "DDIM",  "DPM++ 2M", "LCM"};

/* ---- names ---------------------------------------------------------------------------------- */

static int name_eq(const char *a, const char *b) {
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == '\0' && *b == '\0';
}

void sd_scheduler_config_default(sd_scheduler_config *c) {
    ENG_ASSERT(c != NULL);
    memset(c, 0, sizeof *c);
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    snprintf(c->beta_schedule, sizeof c->beta_schedule, "%s", "scaled_linear");
    c->steps_offset = 1;
    c->timestep_spacing[0] = '\0';
    c->set_alpha_to_one = 0;
    c->prediction = SD_PRED_EPSILON;
}

int sd_sampler_parse(sd_sampler_kind *out, const char *name, eng_err *err) {
    ENG_ASSERT(out != NULL);
    if (name != NULL) {
        for (int k = 0; k < SD_SAMPLER_COUNT; k++) {
            if (name_eq(name, sampler_names[k])) {
                *out = (sd_sampler_kind)k;
                return ENG_OK;
            }
        }
        if (name_eq(name, "dpmpp_2m")) {
            *out = SD_SAMPLER_DPMPP_2M;
            return ENG_OK;
        }
    }
    return eng_err_set(err, ENG_E_INVALID_ARG,
                       "sd_sampler_parse: unknown sampler \"%s\" (expected euler, euler_a, heun, "
                       "ddim, dpm++2m (or dpmpp_2m), lcm)",
                       name != NULL ? name : "(null)");
}

int sd_schedule_parse(sd_schedule_kind *out, const char *name, eng_err *err) {
    ENG_ASSERT(out != NULL);
    if (name != NULL) {
        if (name_eq(name, "normal") || name_eq(name, "default") || name_eq(name, "discrete")) {
            *out = SD_SCHEDULE_NORMAL;
            return ENG_OK;
        }
        if (name_eq(name, "karras")) {
            *out = SD_SCHEDULE_KARRAS;
            return ENG_OK;
        }
    }
    return eng_err_set(err, ENG_E_INVALID_ARG,
                       "sd_schedule_parse: unknown schedule \"%s\" (expected normal (or default, "
                       "discrete), karras)",
                       name != NULL ? name : "(null)");
}

const char *sd_sampler_name(sd_sampler_kind k) {
    if ((int)k < 0 || k >= SD_SAMPLER_COUNT) return "unknown";
    return sampler_names[k];
}

const char *sd_sampler_a1111_name(sd_sampler_kind k, sd_schedule_kind s, char *buf, size_t cap) {
    ENG_ASSERT(buf != NULL && cap >= 1);
    const char *base = ((int)k < 0 || k >= SD_SAMPLER_COUNT) ? "unknown" : sampler_a1111[k];
    snprintf(buf, cap, "%s%s", base, s == SD_SCHEDULE_KARRAS ? " Karras" : "");
    return buf;
}

/* ---- the training schedule (torch float32) -------------------------------------------------- */

/* torch.linspace(start, end, count, dtype=float32) on the CPU: the first half counts up from
 * start, the second down from end, each element one fused multiply-add (ATen's
 * linspace_kernel; its vector path uses fmadd, and the scalar path agrees with it). */
static void torch_linspace_f32(float *out, float start, float end, int count) {
    if (count == 1) {
        out[0] = start;
        return;
    }
    const float step = (end - start) / (float)(count - 1);
    const int halfway = count / 2;
    for (int i = 0; i < count; i++) {
        out[i] =
            i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(count - 1 - i), end);
    }
}

/* betas -> alphas_cumprod (float32; torch.cumprod accumulates in double on the CPU). */
static void make_alphas_cumprod(float *ac, const sd_scheduler_config *c, int scaled) {
    const int t = c->num_train_timesteps;
    /* Python's beta_start ** 0.5 is pow(), then torch rounds the Scalar to float */
    const float start = scaled ? (float)pow(c->beta_start, 0.5) : (float)c->beta_start;
    const float end = scaled ? (float)pow(c->beta_end, 0.5) : (float)c->beta_end;
    torch_linspace_f32(ac, start, end, t); /* ac holds the betas (or their roots) for now */
    double acc = 1.0;
    for (int i = 0; i < t; i++) {
        const float beta = scaled ? ac[i] * ac[i] : ac[i];
        const float alpha = 1.0f - beta;
        acc *= (double)alpha;
        ac[i] = (float)acc;
    }
}

/* ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, float32 like the torch expression. */
static float train_sigma(const float *ac, int t) {
    const float one_minus = 1.0f - ac[t];
    const float ratio = one_minus / ac[t];
    return sqrtf(ratio);
}

/* ---- numpy helpers (float64) ----------------------------------------------------------------- */

/* np.linspace(start, stop, num, endpoint)[i]: i * step + start, the last one exactly stop. */
static double np_linspace(double start, double stop, int64_t num, int endpoint, int64_t i) {
    const int64_t div = endpoint ? num - 1 : num;
    if (div <= 0) return start;
    if (endpoint && i == num - 1) return stop;
    const double step = (stop - start) / (double)div;
    return (double)i * step + start;
}

/* len(np.arange(start, stop, step)) for float arguments: ceil((stop - start) / step). */
static int64_t np_arange_len(double start, double stop, double step) {
    const double len = ceil((stop - start) / step);
    return len > 0 ? (int64_t)len : 0;
}

/* np.arange(start, stop, step)[i] for a float step: numpy fills start + i * (x1 - start) where
 * x1 = start + step (DOUBLE_fill). */
static double np_arange_at(double start, double step, int64_t i) {
    if (i == 0) return start;
    const double delta = (start + step) - start;
    return i == 1 ? start + step : start + (double)i * delta;
}

/* np.interp(x, arange(count), fp) with fp float32 values (numpy computes in float64). */
static double np_interp_train(double x, const float *fp, int count) {
    if (isnan(x)) return x;
    if (x < 0.0) return (double)fp[0];
    if (x >= (double)(count - 1)) return (double)fp[count - 1];
    const int j = (int)floor(x);
    if ((double)j == x) return (double)fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* Karras et al. (2022) eq. 5 with rho 7 (_convert_to_karras): count sigmas from sigma_max down to
 * sigma_min, in float64. */
static double karras_sigma(double sigma_min, double sigma_max, int count, int i) {
    const double ramp = np_linspace(0.0, 1.0, count, 1, i);
    const double min_inv_rho = pow(sigma_min, 1.0 / KARRAS_RHO);
    const double max_inv_rho = pow(sigma_max, 1.0 / KARRAS_RHO);
    return pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), KARRAS_RHO);
}

/* _sigma_to_t: the fractional training timestep whose log sigma interpolates to log(sigma).
 * log_sigmas: (count) float32, increasing. */
static double sigma_to_t(double sigma, const float *log_sigmas, int count) {
    const double log_sigma = log(fmax(sigma, 1e-10));
    /* argmax(cumsum(log_sigma >= log_sigmas)): the first index where the count peaks */
    int64_t c = 0, best = -1;
    int low_idx = 0;
    for (int k = 0; k < count; k++) {
        if (log_sigma - (double)log_sigmas[k] >= 0.0) c++;
        if (c > best) {
            best = c;
            low_idx = k;
        }
    }
    if (low_idx > count - 2) low_idx = count - 2;
    const int high_idx = low_idx + 1;
    const double low = (double)log_sigmas[low_idx], high = (double)log_sigmas[high_idx];
    double w = (low - log_sigma) / (low - high);
    w = w < 0.0 ? 0.0 : (w > 1.0 ? 1.0 : w);
    return (1.0 - w) * (double)low_idx + w * (double)high_idx;
}

/* ---- planning -------------------------------------------------------------------------------- */

/* The timesteps of the "linspace" / "leading" / "trailing" spacings (float64 values before the
 * scheduler's cast; rounded with numpy's half-to-even round where diffusers rounds).
 * `plus_one`: DPM++'s variants (steps + 1 points, the last dropped). Returns the count
 * (len(np.arange(...)) for "trailing", which can exceed `steps` by one). out NULL: count only. */
static int64_t spaced_timesteps(
    double *out, spacing sp, int steps, int train, int offset, int round_linspace, int plus_one) {
    int64_t count = 0;
    if (sp == SPACING_LINSPACE) {
        /* np.linspace(0, T - 1, steps (+1))[::-1] (DPM++ drops the trailing 0) */
        const int64_t num = plus_one ? steps + 1 : steps;
        count = steps;
        for (int64_t i = 0; out != NULL && i < count; i++) {
            const double v = np_linspace(0.0, (double)(train - 1), num, 1, num - 1 - i);
            out[i] = round_linspace ? nearbyint(v) : v;
        }
    } else if (sp == SPACING_LEADING) {
        /* (np.arange(0, steps (+1)) * (T // steps (+1)))[::-1] + steps_offset */
        const int64_t num = plus_one ? steps + 1 : steps;
        const int64_t ratio = train / num;
        count = steps;
        for (int64_t i = 0; out != NULL && i < count; i++)
            out[i] = (double)((num - 1 - i) * ratio + offset);
    } else {
        /* np.round(np.arange(T, 0, -T / steps)) - 1 */
        const double ratio = (double)train / (double)steps;
        count = np_arange_len((double)train, 0.0, -ratio);
        for (int64_t i = 0; out != NULL && i < count; i++)
            out[i] = nearbyint(np_arange_at((double)train, -ratio, i)) - 1.0;
    }
    return count;
}

static int plan_schedule(sd_sampler *s, spacing sp, const sd_scheduler_config *c, eng_err *err) {
    int rc = ENG_OK;
    const int train = s->train, steps = s->steps;
    const int karras = s->sched == SD_SCHEDULE_KARRAS;
    float *train_sigmas = NULL, *log_sigmas = NULL;
    double *ts = NULL, *sg = NULL;
    const int64_t max_count = (int64_t)steps + 1;

    train_sigmas = malloc((size_t)train * sizeof *train_sigmas);
    log_sigmas = malloc((size_t)train * sizeof *log_sigmas);
    ts = calloc((size_t)max_count, sizeof *ts);
    sg = calloc((size_t)max_count, sizeof *sg);
    if (train_sigmas == NULL || log_sigmas == NULL || ts == NULL || sg == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_sampler_create: out of memory planning %d steps",
                         steps);
        goto done;
    }
    for (int t = 0; t < train; t++) {
        train_sigmas[t] = train_sigma(s->alphas_cumprod, t);
        log_sigmas[t] = logf(train_sigmas[t]); /* np.log of a float32 array: float32 */
    }

    int64_t count = 0; /* len(timesteps) */
    switch (s->kind) {
    case SD_SAMPLER_EULER:
    case SD_SAMPLER_EULER_A:
    case SD_SAMPLER_HEUN: {
        /* timesteps float32 (numpy), sigmas np.interp of them, optionally Karras */
        count = spaced_timesteps(ts, sp, steps, train, c->steps_offset, 0, 0);
        for (int64_t i = 0; i < count; i++) {
            ts[i] = (double)(float)ts[i];
            sg[i] = np_interp_train(ts[i], train_sigmas, train);
        }
        if (karras) {
            const double sigma_min = sg[count - 1], sigma_max = sg[0];
            count = steps; /* _convert_to_karras(num_inference_steps) */
            for (int64_t i = 0; i < count; i++) {
                sg[i] = karras_sigma(sigma_min, sigma_max, steps, (int)i);
                ts[i] = (double)(float)sigma_to_t(sg[i], log_sigmas, train);
            }
        }
        break;
    }
    case SD_SAMPLER_DPMPP_2M: {
        if (sp == SPACING_LEADING && train / (steps + 1) == 0) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "sd_sampler_create: dpm++2m: %d steps with \"leading\" spacing need "
                             "num_train_timesteps >= %d (have %d)",
                             steps, steps + 1, train);
            goto done;
        }
        count = spaced_timesteps(ts, sp, steps, train, c->steps_offset, 1, 1);
        if (karras) {
            /* the full training range, not the spaced timesteps' */
            const double sigma_min = train_sigmas[0], sigma_max = train_sigmas[train - 1];
            count = steps;
            for (int64_t i = 0; i < count; i++) {
                sg[i] = karras_sigma(sigma_min, sigma_max, steps, (int)i);
                ts[i] = nearbyint(sigma_to_t(sg[i], log_sigmas, train));
            }
        } else {
            for (int64_t i = 0; i < count; i++) {
                sg[i] = np_interp_train(ts[i], train_sigmas, train);
                /* a repeated sigma makes h = 0: diffusers divides by it and returns NaN */
                if (i > 0 && !(sg[i] < sg[i - 1])) {
                    rc = eng_err_set(
                        err, ENG_E_INVALID_ARG,
                        "sd_sampler_create: dpm++2m: %d steps with \"%s\" spacing "
                        "repeat timestep %.0f (DPM-Solver needs distinct sigmas; use "
                        "fewer steps)",
                        steps, c->timestep_spacing[0] != '\0' ? c->timestep_spacing : "linspace",
                        ts[i]);
                    goto done;
                }
            }
        }
        break;
    }
    case SD_SAMPLER_DDIM: {
        count = spaced_timesteps(ts, sp, steps, train, c->steps_offset, 1, 0);
        break;
    }
    case SD_SAMPLER_LCM: {
        /* k = T // 50; origin = [1..50] * k - 1, reversed; floor(linspace(0, 50, steps, no
         * endpoint)) picks */
        const int64_t k = train / LCM_ORIGINAL_STEPS;
        count = steps;
        for (int64_t i = 0; i < count; i++) {
            const int64_t idx =
                (int64_t)floor(np_linspace(0.0, (double)LCM_ORIGINAL_STEPS, steps, 0, i));
            ts[i] = (double)((LCM_ORIGINAL_STEPS - idx) * k - 1);
        }
        break;
    }
    default: ENG_ASSERT(!"unknown sampler kind");
    }
    ENG_ASSERT(count >= 1 && count <= max_count);

    if (s->kind == SD_SAMPLER_DDIM || s->kind == SD_SAMPLER_LCM) {
        for (int64_t i = 0; i < count; i++) {
            if (ts[i] < 0.0 || ts[i] > (double)(train - 1)) {
                rc = eng_err_set(err, ENG_E_INVALID_ARG,
                                 "sd_sampler_create: %s: %d steps with \"%s\" spacing and "
                                 "steps_offset %d give timestep %.0f, outside 0..%d (try another "
                                 "step count or spacing)",
                                 sampler_names[s->kind], steps,
                                 c->timestep_spacing[0] != '\0' ? c->timestep_spacing : "leading",
                                 c->steps_offset, ts[i], train - 1);
                goto done;
            }
        }
    }

    /* the model-call arrays: Heun interleaves every step but the first */
    const int heun = s->kind == SD_SAMPLER_HEUN;
    s->full = heun ? 2 * count - 1 : count;
    s->timesteps = malloc((size_t)s->full * sizeof *s->timesteps);
    if (s->timesteps == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_sampler_create: out of memory planning %d steps",
                         steps);
        goto done;
    }
    for (int64_t i = 0; i < count; i++) {
        if (heun && i > 0) {
            s->timesteps[2 * i - 1] = ts[i];
            s->timesteps[2 * i] = ts[i];
        } else {
            s->timesteps[heun ? 2 * i : i] = ts[i];
        }
    }
    if (s->kind != SD_SAMPLER_DDIM && s->kind != SD_SAMPLER_LCM) {
        s->sigmas = malloc((size_t)(s->full + 1) * sizeof *s->sigmas);
        if (s->sigmas == NULL) {
            rc = eng_err_set(err, ENG_E_OOM, "sd_sampler_create: out of memory planning %d steps",
                             steps);
            goto done;
        }
        sg[count] = 0.0; /* final sigma: zero */
        for (int64_t i = 0; i <= count; i++) {
            const float v = (float)sg[i];
            if (heun && i > 0 && i < count) {
                s->sigmas[2 * i - 1] = v;
                s->sigmas[2 * i] = v;
            } else {
                s->sigmas[heun ? (i == 0 ? 0 : 2 * count - 1) : i] = v;
            }
        }
        float max_sigma = s->sigmas[0];
        for (int64_t i = 1; i <= s->full; i++)
            if (s->sigmas[i] > max_sigma) max_sigma = s->sigmas[i];
        if (s->kind != SD_SAMPLER_DPMPP_2M && sp == SPACING_LEADING) {
            const float sq = max_sigma * max_sigma;
            const float sum = sq + 1.0f;
            s->init_sigma = sqrtf(sum);
        } else {
            s->init_sigma = s->kind == SD_SAMPLER_DPMPP_2M ? 1.0f : max_sigma;
        }
    } else {
        s->init_sigma = 1.0f;
    }

done:
    free(sg);
    free(ts);
    free(log_sigmas);
    free(train_sigmas);
    return rc;
}

/* ---- create / destroy / queries --------------------------------------------------------------- */

void sd_sampler_destroy(sd_sampler *s) {
    if (s == NULL) return;
    free(s->state_b);
    free(s->state_a);
    free(s->sigmas);
    free(s->timesteps);
    free(s->alphas_cumprod);
    free(s);
}

static int check_config(const sd_scheduler_config *c, int *scaled, eng_err *err) {
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > SD_SAMPLER_MAX_TRAIN_TIMESTEPS) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_create: num_train_timesteps %d outside 2..%d",
                           c->num_train_timesteps, SD_SAMPLER_MAX_TRAIN_TIMESTEPS);
    }
    if (!(c->beta_start > 0.0 && c->beta_start < 1.0 && c->beta_end > 0.0 && c->beta_end < 1.0)) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_create: beta_start %g and beta_end %g must lie in (0, 1)",
                           c->beta_start, c->beta_end);
    }
    if (strcmp(c->beta_schedule, "scaled_linear") == 0) {
        *scaled = 1;
    } else if (strcmp(c->beta_schedule, "linear") == 0) {
        *scaled = 0;
    } else {
        return eng_err_set(err, ENG_E_UNSUPPORTED,
                           "sd_sampler_create: beta_schedule \"%s\" is not supported (expected "
                           "scaled_linear or linear)",
                           c->beta_schedule);
    }
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_create: steps_offset %d outside 0..%d", c->steps_offset,
                           c->num_train_timesteps - 1);
    }
    if (c->set_alpha_to_one != 0 && c->set_alpha_to_one != 1) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_create: set_alpha_to_one %d (expected 0 or 1)",
                           c->set_alpha_to_one);
    }
    if ((int)c->prediction < 0 || c->prediction >= SD_PRED_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "sd_sampler_create: prediction %d out of range",
                           (int)c->prediction);
    }
    return ENG_OK;
}

static int parse_spacing(spacing *out, const char *name, sd_sampler_kind kind, eng_err *err) {
    if (name[0] == '\0') { /* each scheduler's diffusers default */
        *out =
            kind == SD_SAMPLER_DDIM || kind == SD_SAMPLER_LCM ? SPACING_LEADING : SPACING_LINSPACE;
    } else if (strcmp(name, "linspace") == 0) {
        *out = SPACING_LINSPACE;
    } else if (strcmp(name, "leading") == 0) {
        *out = SPACING_LEADING;
    } else if (strcmp(name, "trailing") == 0) {
        *out = SPACING_TRAILING;
    } else {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_create: timestep_spacing \"%s\" (expected \"\", linspace, "
                           "leading or trailing)",
                           name);
    }
    return ENG_OK;
}

int sd_sampler_create(sd_sampler **out,
                      sd_sampler_kind kind,
                      sd_schedule_kind sched,
                      const sd_scheduler_config *cfg,
                      int steps,
                      double strength,
                      int64_t n,
                      eng_err *err) {
    int rc = ENG_OK, scaled = 1;
    sd_sampler *s = NULL;
    sd_scheduler_config c;
    spacing sp = SPACING_LINSPACE;
    ENG_ASSERT(out != NULL);
    *out = NULL;
    /* a copy, its strings terminated: the config is the caller's plain data */
    if (cfg != NULL) {
        c = *cfg;
    } else {
        sd_scheduler_config_default(&c);
    }
    c.beta_schedule[sizeof c.beta_schedule - 1] = '\0';
    c.timestep_spacing[sizeof c.timestep_spacing - 1] = '\0';

    if ((int)kind < 0 || kind >= SD_SAMPLER_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_sampler_create: sampler kind %d out of range",
                         (int)kind);
        goto done;
    }
    if ((int)sched < 0 || sched >= SD_SCHEDULE_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_sampler_create: schedule kind %d out of range",
                         (int)sched);
        goto done;
    }
    if (sched == SD_SCHEDULE_KARRAS &&
        (kind == SD_SAMPLER_EULER_A || kind == SD_SAMPLER_DDIM || kind == SD_SAMPLER_LCM)) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "sd_sampler_create: %s has no Karras sigmas (diffusers' %s has no "
                         "use_karras_sigmas; Karras works with euler, heun and dpm++2m)",
                         sampler_names[kind],
                         kind == SD_SAMPLER_EULER_A ? "EulerAncestralDiscreteScheduler"
                         : kind == SD_SAMPLER_DDIM  ? "DDIMScheduler"
                                                    : "LCMScheduler");
        goto done;
    }
    if ((rc = check_config(&c, &scaled, err)) != ENG_OK) goto done;
    if ((rc = parse_spacing(&sp, c.timestep_spacing, kind, err)) != ENG_OK) goto done;
    if (steps < 1 || steps > SD_SAMPLER_MAX_STEPS || steps > c.num_train_timesteps) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_sampler_create: steps %d outside 1..%d (and at most "
                         "num_train_timesteps %d)",
                         steps, SD_SAMPLER_MAX_STEPS, c.num_train_timesteps);
        goto done;
    }
    if (kind == SD_SAMPLER_LCM &&
        (steps > LCM_ORIGINAL_STEPS || c.num_train_timesteps < LCM_ORIGINAL_STEPS)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_sampler_create: lcm picks its steps from original_inference_steps "
                         "%d: steps %d must be <= %d and num_train_timesteps %d >= %d",
                         LCM_ORIGINAL_STEPS, steps, LCM_ORIGINAL_STEPS, c.num_train_timesteps,
                         LCM_ORIGINAL_STEPS);
        goto done;
    }
    if (!(strength > 0.0 && strength <= 1.0)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_sampler_create: strength %g outside (0, 1] (1 = txt2img)", strength);
        goto done;
    }
    if (n < 1 || (uint64_t)n > SIZE_MAX / sizeof(float) / 2) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "sd_sampler_create: latent size %lld floats",
                         (long long)n);
        goto done;
    }

    s = calloc(1, sizeof *s);
    if (s == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_sampler_create: out of memory");
        goto done;
    }
    s->kind = kind;
    s->sched = sched;
    s->pred = c.prediction;
    s->n = n;
    s->steps = steps;
    s->train = c.num_train_timesteps;
    s->alphas_cumprod = malloc((size_t)s->train * sizeof *s->alphas_cumprod);
    if (s->alphas_cumprod == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "sd_sampler_create: out of memory (%d train timesteps)",
                         s->train);
        goto done;
    }
    make_alphas_cumprod(s->alphas_cumprod, &c, scaled);
    if (!(s->alphas_cumprod[s->train - 1] > 0.0f)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "sd_sampler_create: alphas_cumprod underflows to 0 by timestep %d "
                         "(beta_start %g, beta_end %g and %d train timesteps destroy all signal)",
                         s->train - 1, c.beta_start, c.beta_end, s->train);
        goto done;
    }
    s->final_alpha_cumprod = c.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    if ((rc = plan_schedule(s, sp, &c, err)) != ENG_OK) goto done;

    /* img2img: StableDiffusionImg2ImgPipeline.get_timesteps */
    {
        int64_t init = (int64_t)((double)steps * strength);
        if (init > steps) init = steps;
        const int64_t t_start = steps - init > 0 ? steps - init : 0;
        const int64_t order = kind == SD_SAMPLER_HEUN ? 2 : 1;
        s->begin = t_start * order;
        if (init == 0 || s->begin >= s->full) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "sd_sampler_create: strength %g with %d steps leaves no step "
                             "(int(steps * strength) = 0; needs strength >= %g)",
                             strength, steps, 1.0 / steps);
            goto done;
        }
    }

    if (kind == SD_SAMPLER_HEUN || kind == SD_SAMPLER_DPMPP_2M) {
        s->state_a = malloc((size_t)n * sizeof *s->state_a);
        if (kind == SD_SAMPLER_HEUN) s->state_b = malloc((size_t)n * sizeof *s->state_b);
        if (s->state_a == NULL || (kind == SD_SAMPLER_HEUN && s->state_b == NULL)) {
            rc = eng_err_set(err, ENG_E_OOM,
                             "sd_sampler_create: out of memory for %s state (%lld floats)",
                             sampler_names[kind], (long long)n);
            goto done;
        }
    }
    *out = s;
    s = NULL;
done:
    sd_sampler_destroy(s);
    return rc;
}

int64_t sd_sampler_count(const sd_sampler *s) {
    ENG_ASSERT(s != NULL);
    return s->full - s->begin;
}

double sd_sampler_timestep(const sd_sampler *s, int64_t i) {
    ENG_ASSERT(s != NULL && i >= 0 && i < s->full - s->begin);
    return s->timesteps[s->begin + i];
}

/* 1 / (sigma^2 + 1)^0.5 with the divisor rounded as torch does. */
static float input_divisor(float sigma) {
    const float sq = sigma * sigma;
    const float sum = sq + 1.0f;
    return sqrtf(sum);
}

double sd_sampler_input_scale(const sd_sampler *s, int64_t i) {
    ENG_ASSERT(s != NULL && i >= 0 && i < s->full - s->begin);
    if (s->kind == SD_SAMPLER_EULER || s->kind == SD_SAMPLER_EULER_A ||
        s->kind == SD_SAMPLER_HEUN) {
        return 1.0 / (double)input_divisor(s->sigmas[s->begin + i]);
    }
    return 1.0;
}

double sd_sampler_init_sigma(const sd_sampler *s) {
    ENG_ASSERT(s != NULL);
    return (double)s->init_sigma;
}

int sd_sampler_needs_noise(const sd_sampler *s, int64_t i) {
    ENG_ASSERT(s != NULL && i >= 0 && i < s->full - s->begin);
    if (s->kind == SD_SAMPLER_EULER_A) return 1;
    if (s->kind == SD_SAMPLER_LCM) return s->begin + i != s->full - 1;
    return 0;
}

/* DPM-Solver's (alpha_t, sigma_t) of a sigma: 1 / (sigma^2 + 1)^0.5 and sigma times that. */
static void dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    *alpha_t = 1.0f / input_divisor(sigma);
    *sigma_t = sigma * *alpha_t;
}

void sd_sampler_add_noise(const sd_sampler *s, float *x, const float *noise) {
    ENG_ASSERT(s != NULL && x != NULL && noise != NULL);
    const int64_t n = s->n, k = s->begin;
    switch (s->kind) {
    case SD_SAMPLER_EULER:
    case SD_SAMPLER_EULER_A:
    case SD_SAMPLER_HEUN: { /* original + noise * sigma */
        const float sigma = s->sigmas[k];
        for (int64_t j = 0; j < n; j++) {
            const float t = noise[j] * sigma;
            x[j] = x[j] + t;
        }
        break;
    }
    case SD_SAMPLER_DPMPP_2M: { /* alpha_t * original + sigma_t * noise */
        float alpha_t, sigma_t;
        dpm_alpha_sigma(s->sigmas[k], &alpha_t, &sigma_t);
        for (int64_t j = 0; j < n; j++) {
            const float a = alpha_t * x[j];
            const float b = sigma_t * noise[j];
            x[j] = a + b;
        }
        break;
    }
    case SD_SAMPLER_DDIM:
    case SD_SAMPLER_LCM: { /* sqrt(abar) * original + sqrt(1 - abar) * noise */
        const float abar = s->alphas_cumprod[(int64_t)s->timesteps[k]];
        const float sa = sqrtf(abar);
        const float sb = sqrtf(1.0f - abar);
        for (int64_t j = 0; j < n; j++) {
            const float a = sa * x[j];
            const float b = sb * noise[j];
            x[j] = a + b;
        }
        break;
    }
    default: ENG_ASSERT(!"unknown sampler kind");
    }
}

/* ---- the steps (k: the call's index in the whole schedule) ------------------------------------ */

/* The x0 prediction of the sigma samplers: epsilon: x - sigma m; v: m (-sigma / (sigma^2 +
 * 1)^0.5) + x / (sigma^2 + 1). */
static float sigma_x0(sd_prediction pred, float x, float m, float sigma, float v_out, float v_in) {
    if (pred == SD_PRED_EPSILON) {
        const float t = sigma * m;
        return x - t;
    }
    const float a = m * v_out;
    const float b = x / v_in;
    return a + b;
}

static void sigma_v_coefs(float sigma, float *v_out, float *v_in) {
    const float sq = sigma * sigma;
    *v_in = sq + 1.0f;
    *v_out = -sigma / sqrtf(*v_in);
}

/* EulerDiscreteScheduler.step (s_churn 0). */
static void step_euler(const sd_sampler *s, int64_t k, float *x, const float *m) {
    const float sigma = s->sigmas[k];
    const float dt = s->sigmas[k + 1] - sigma;
    float v_out, v_in;
    sigma_v_coefs(sigma, &v_out, &v_in);
    for (int64_t j = 0; j < s->n; j++) {
        const float pred = sigma_x0(s->pred, x[j], m[j], sigma, v_out, v_in);
        const float diff = x[j] - pred;
        const float d = diff / sigma;
        const float t = d * dt;
        x[j] = x[j] + t;
    }
}

/* EulerAncestralDiscreteScheduler.step. */
static void
step_euler_a(const sd_sampler *s, int64_t k, float *x, const float *m, const float *noise) {
    const float sigma = s->sigmas[k], sigma_to = s->sigmas[k + 1];
    const float from2 = sigma * sigma, to2 = sigma_to * sigma_to;
    const float up_num = to2 * (from2 - to2);
    const float sigma_up = sqrtf(up_num / from2);
    const float up2 = sigma_up * sigma_up;
    const float sigma_down = sqrtf(to2 - up2);
    const float dt = sigma_down - sigma;
    float v_out, v_in;
    sigma_v_coefs(sigma, &v_out, &v_in);
    for (int64_t j = 0; j < s->n; j++) {
        const float pred = sigma_x0(s->pred, x[j], m[j], sigma, v_out, v_in);
        const float diff = x[j] - pred;
        const float d = diff / sigma;
        const float t = d * dt;
        const float prev = x[j] + t;
        const float up = noise[j] * sigma_up;
        x[j] = prev + up;
    }
}

/* HeunDiscreteScheduler.step: a first-order (Euler) half that saves its derivative, dt and
 * sample, then a correction at the next sigma averaging the two derivatives. */
static void step_heun(sd_sampler *s, int64_t k, float *x, const float *m) {
    if (!s->heun_pending) {
        const float sigma = s->sigmas[k], sigma_next = s->sigmas[k + 1];
        const float dt = sigma_next - sigma;
        float v_out, v_in;
        sigma_v_coefs(sigma, &v_out, &v_in);
        for (int64_t j = 0; j < s->n; j++) {
            const float pred = sigma_x0(s->pred, x[j], m[j], sigma, v_out, v_in);
            const float diff = x[j] - pred;
            const float d = diff / sigma;
            s->state_a[j] = d;
            s->state_b[j] = x[j];
            const float t = d * dt;
            x[j] = x[j] + t;
        }
        s->heun_dt = dt;
        s->heun_pending = 1;
    } else {
        const float sigma_next = s->sigmas[k];
        const float dt = s->heun_dt;
        float v_out, v_in;
        sigma_v_coefs(sigma_next, &v_out, &v_in);
        for (int64_t j = 0; j < s->n; j++) {
            const float pred = sigma_x0(s->pred, x[j], m[j], sigma_next, v_out, v_in);
            const float diff = x[j] - pred;
            const float d2 = diff / sigma_next;
            const float sum = s->state_a[j] + d2;
            const float d = sum / 2.0f;
            const float t = d * dt;
            x[j] = s->state_b[j] + t;
        }
        s->heun_pending = 0;
    }
}

/* DDIMScheduler.step with eta 0 (no variance noise), clip_sample off. */
static void step_ddim(const sd_sampler *s, int64_t k, float *x, const float *m) {
    const int64_t t = (int64_t)s->timesteps[k];
    const int64_t prev_t = t - s->train / s->steps;
    const float a = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float b = 1.0f - a;
    const float sa = sqrtf(a), sb = sqrtf(b);
    const float dir_coef = sqrtf((1.0f - a_prev) - 0.0f); /* std_dev_t = 0 */
    const float sa_prev = sqrtf(a_prev);
    for (int64_t j = 0; j < s->n; j++) {
        float pred, eps;
        if (s->pred == SD_PRED_EPSILON) {
            const float t1 = sb * m[j];
            const float t2 = x[j] - t1;
            pred = t2 / sa;
            eps = m[j];
        } else {
            const float t1 = sa * x[j];
            const float t2 = sb * m[j];
            pred = t1 - t2;
            const float t3 = sa * m[j];
            const float t4 = sb * x[j];
            eps = t3 + t4;
        }
        const float dir = dir_coef * eps;
        const float t5 = sa_prev * pred;
        x[j] = t5 + dir;
    }
}

/* DPMSolverMultistepScheduler.step, dpmsolver++ order 2 (midpoint): first order on the first
 * call and on the last step (lower_order_final, final sigma zero), second order between. */
static void step_dpm(sd_sampler *s, int64_t k, float *x, const float *m) {
    float alpha_s0, sigma_s0, alpha_t, sigma_t;
    dpm_alpha_sigma(s->sigmas[k], &alpha_s0, &sigma_s0);
    dpm_alpha_sigma(s->sigmas[k + 1], &alpha_t, &sigma_t);
    /* convert_model_output: the x0 prediction */
    float v_a = alpha_s0, v_s = sigma_s0;
    const int lower_order_final = k == s->full - 1;
    const int first_order = s->dpm_lower_nums < 1 || lower_order_final;
    const float lambda_t = logf(alpha_t) - logf(sigma_t);
    const float lambda_s0 = logf(alpha_s0) - logf(sigma_s0);
    const float h = lambda_t - lambda_s0;
    const float ratio = sigma_t / sigma_s0;
    const float em1 = expf(-h) - 1.0f;
    const float c0 = alpha_t * em1;
    float c1 = 0.0f, inv_r0 = 0.0f;
    if (!first_order) {
        float alpha_s1, sigma_s1;
        dpm_alpha_sigma(s->sigmas[k - 1], &alpha_s1, &sigma_s1);
        const float lambda_s1 = logf(alpha_s1) - logf(sigma_s1);
        const float h0 = lambda_s0 - lambda_s1;
        const float r0 = h0 / h;
        inv_r0 = 1.0f / r0;
        c1 = 0.5f * c0;
    }
    for (int64_t j = 0; j < s->n; j++) {
        float m0;
        if (s->pred == SD_PRED_EPSILON) {
            const float t1 = v_s * m[j];
            const float t2 = x[j] - t1;
            m0 = t2 / v_a;
        } else {
            const float t1 = v_a * x[j];
            const float t2 = v_s * m[j];
            m0 = t1 - t2;
        }
        const float a = ratio * x[j];
        const float b = c0 * m0;
        float xt = a - b;
        if (!first_order) {
            const float diff = m0 - s->state_a[j];
            const float d1 = inv_r0 * diff;
            const float c = c1 * d1;
            xt = xt - c;
        }
        s->state_a[j] = m0;
        x[j] = xt;
    }
    if (s->dpm_lower_nums < 2) s->dpm_lower_nums++;
}

/* LCMScheduler.step: the consistency-model boundary condition, then renoise to the next
 * timestep (no noise on the last step). */
static void step_lcm(const sd_sampler *s, int64_t k, float *x, const float *m, const float *noise) {
    const int64_t t = (int64_t)s->timesteps[k];
    const int64_t prev_t = k + 1 < s->full ? (int64_t)s->timesteps[k + 1] : t;
    const float a = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float b = 1.0f - a, b_prev = 1.0f - a_prev;
    /* get_scalings_for_boundary_condition_discrete: the int64 timestep times 10.0 is float32 */
    const float scaled = (float)t * LCM_TIMESTEP_SCALING;
    const float sq = scaled * scaled;
    const float den = sq + LCM_SIGMA_DATA_SQUARE;
    const float c_skip = LCM_SIGMA_DATA_SQUARE / den;
    const float c_out = scaled / sqrtf(den);
    const float sa = sqrtf(a), sb = sqrtf(b);
    const float sa_prev = sqrtf(a_prev), sb_prev = sqrtf(b_prev);
    const int last = k == s->full - 1;
    for (int64_t j = 0; j < s->n; j++) {
        float pred;
        if (s->pred == SD_PRED_EPSILON) {
            const float t1 = sb * m[j];
            const float t2 = x[j] - t1;
            pred = t2 / sa;
        } else {
            const float t1 = sa * x[j];
            const float t2 = sb * m[j];
            pred = t1 - t2;
        }
        const float d1 = c_out * pred;
        const float d2 = c_skip * x[j];
        const float denoised = d1 + d2;
        if (last) {
            x[j] = denoised;
        } else {
            const float p1 = sa_prev * denoised;
            const float p2 = sb_prev * noise[j];
            x[j] = p1 + p2;
        }
    }
}

int sd_sampler_step(
    sd_sampler *s, int64_t i, float *x, const float *model_out, const float *noise, eng_err *err) {
    ENG_ASSERT(s != NULL && x != NULL && model_out != NULL);
    const int64_t count = s->full - s->begin;
    if (i != s->next || i >= count) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_step: %s: call %lld out of order (expected call %lld of "
                           "%lld)",
                           sampler_names[s->kind], (long long)i, (long long)s->next,
                           (long long)count);
    }
    const int needs = sd_sampler_needs_noise(s, i);
    if (needs && noise == NULL) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "sd_sampler_step: %s: call %lld needs noise (n = %lld standard "
                           "normals) but got NULL",
                           sampler_names[s->kind], (long long)i, (long long)s->n);
    }
    const int64_t k = s->begin + i;
    switch (s->kind) {
    case SD_SAMPLER_EULER: step_euler(s, k, x, model_out); break;
    case SD_SAMPLER_EULER_A: step_euler_a(s, k, x, model_out, noise); break;
    case SD_SAMPLER_HEUN: step_heun(s, k, x, model_out); break;
    case SD_SAMPLER_DDIM: step_ddim(s, k, x, model_out); break;
    case SD_SAMPLER_DPMPP_2M: step_dpm(s, k, x, model_out); break;
    case SD_SAMPLER_LCM: step_lcm(s, k, x, model_out, noise); break;
    default: ENG_ASSERT(!"unknown sampler kind");
    }
    s->next++;
    return ENG_OK;
}
