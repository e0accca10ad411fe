/* sd_sampler.h: the noise schedules and samplers of the Stable Diffusion pipeline, as host math
 * on float arrays, reproducing diffusers 0.42.1's schedulers given the same scheduler config.
 *
 *   sd_scheduler_config cfg; sd_scheduler_config_default(&cfg);     // SD 1.5's values
 *   sd_sampler *smp = NULL; eng_err err = {0};
 *   if (sd_sampler_create(&smp, SD_SAMPLER_DPMPP_2M, SD_SCHEDULE_KARRAS, &cfg, 20, 1.0, n,
 *                         &err) != ENG_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *   // txt2img: x = noise * init_sigma   (img2img: sd_sampler_add_noise(smp, x_image, noise))
 *   for (int64_t i = 0; i < sd_sampler_count(smp); i++) {
 *       // x_in = x * sd_sampler_input_scale(smp, i); eps = CFG(UNet(x_in, sd_sampler_timestep(smp, i)))
 *       // noise: n fresh standard normals when sd_sampler_needs_noise(smp, i), else NULL
 *       if (sd_sampler_step(smp, i, x, eps, noise, &err) != ENG_OK) ...
 *   }
 *   sd_sampler_destroy(smp);
 *
 * The samplers (diffusers class; CLI name; A1111 name):
 *   SD_SAMPLER_EULER      EulerDiscreteScheduler            "euler"    "Euler"
 *   SD_SAMPLER_EULER_A    EulerAncestralDiscreteScheduler   "euler_a"  "Euler a"
 *   SD_SAMPLER_HEUN       HeunDiscreteScheduler             "heun"     "Heun"
 *   SD_SAMPLER_DDIM       DDIMScheduler (eta 0)             "ddim"     "DDIM"
 *   SD_SAMPLER_DPMPP_2M   DPMSolverMultistepScheduler       "dpm++2m"  "DPM++ 2M"
 *                         (dpmsolver++, solver_order 2, midpoint, lower_order_final)
 *   SD_SAMPLER_LCM        LCMScheduler (original_inference_steps 50, timestep_scaling 10)
 *                                                           "lcm"      "LCM"
 * Karras sigmas (use_karras_sigmas=True) exist for Euler, Heun and DPM++ 2M, as in diffusers;
 * the other three refuse them (ENG_E_UNSUPPORTED).
 *
 * What "the same numbers" means: the schedule (betas, alphas_cumprod, sigmas, timesteps) is built
 * with the float32/float64 roundings diffusers gets from torch and numpy (torch.linspace's fma
 * halves, cumprod accumulated in double, numpy's linspace/arange/interp/round), and each step
 * does diffusers' float32 operations in the same order. Measured against diffusers on the CPU
 * (tests/gen_sd_sampler_goldens.py): latents agree to about 1e-6 of their largest magnitude;
 * fractional Karras timesteps to about 1e-4 (numpy's float32 log differs from the C library's
 * by an ulp; the sigmas themselves do not depend on it).
 * Each scheduler's own default timestep_spacing applies when the config names none ("linspace"
 * for Euler, Euler a, Heun, DPM++ 2M; "leading" for DDIM; LCM has its own timestep selection and
 * ignores spacing and steps_offset). img2img follows StableDiffusionImg2ImgPipeline:
 * init = min(int(steps * strength), steps), the plan starts at call (steps - init) * order of
 * the full schedule (order 2 for Heun, 1 otherwise), and the first timestep of the plan is the
 * one add_noise uses. LCM with strength < 1 is the same truncation (the plain img2img pipeline
 * with an LCMScheduler, not LatentConsistencyModelImg2ImgPipeline's strength-scaled schedule).
 *
 * Ownership: the sampler owns its plan and state buffers (plain malloc, host memory: n floats
 * for Heun's saved derivative and sample, n floats for DPM++'s previous prediction); x,
 * model_out and noise are borrowed for the call. Threads: one sampler per generation; the
 * queries are const and safe from any thread, sd_sampler_step mutates the state. The sampler
 * draws no random numbers: the caller passes the noise in.
 * Limits: steps 1..SD_SAMPLER_MAX_STEPS (and <= num_train_timesteps; LCM <= 50),
 * num_train_timesteps 2..SD_SAMPLER_MAX_TRAIN_TIMESTEPS. */
#ifndef SD_SAMPLER_H
#define SD_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SD_SAMPLER_MAX_STEPS           1000
#define SD_SAMPLER_MAX_TRAIN_TIMESTEPS 100000

typedef enum sd_sampler_kind {
    SD_SAMPLER_EULER,
    SD_SAMPLER_EULER_A,
    SD_SAMPLER_HEUN,
    SD_SAMPLER_DDIM,
    SD_SAMPLER_DPMPP_2M,
    SD_SAMPLER_LCM,
    SD_SAMPLER_COUNT
} sd_sampler_kind;

typedef enum sd_schedule_kind {
    SD_SCHEDULE_NORMAL, /* the scheduler's own sigmas / timesteps */
    SD_SCHEDULE_KARRAS, /* Karras et al. (2022) sigmas, rho 7 (use_karras_sigmas=True) */
    SD_SCHEDULE_COUNT
} sd_schedule_kind;

/* What the model predicts (the config's prediction_type). */
typedef enum sd_prediction {
    SD_PRED_EPSILON, /* "epsilon": the noise (SD 1.x, SD 2.x base) */
    SD_PRED_V,       /* "v_prediction" (SD 2.x 768) */
    SD_PRED_COUNT
} sd_prediction;

/* diffusers scheduler_config.json fields. */
typedef struct sd_scheduler_config {
    int num_train_timesteps;   /* 1000 */
    double beta_start;         /* 0.00085 */
    double beta_end;           /* 0.012 */
    char beta_schedule[24];    /* "scaled_linear" | "linear" */
    int steps_offset;          /* 1 (used by "leading" spacing) */
    char timestep_spacing[16]; /* "" = the sampler's diffusers default; "leading" | "linspace" |
                                  "trailing" */
    int set_alpha_to_one;      /* 0: DDIM's / LCM's last step goes to alphas_cumprod[0] */
    sd_prediction prediction;  /* SD_PRED_EPSILON */
} sd_scheduler_config;

/* SD 1.5's scheduler_config.json: 1000 train steps, scaled_linear 0.00085..0.012, steps_offset 1,
 * no timestep_spacing, set_alpha_to_one false, epsilon. */
void sd_scheduler_config_default(sd_scheduler_config *c);

/* Names as the CLI takes them (case-insensitive): "euler", "euler_a", "heun", "ddim", "dpm++2m"
 * (also "dpmpp_2m"), "lcm"; schedules "normal" (also "default", "discrete"), "karras".
 * Errors: ENG_E_INVALID_ARG naming the text and listing the valid names. */
int sd_sampler_parse(sd_sampler_kind *out, const char *name, eng_err *err);
int sd_schedule_parse(sd_schedule_kind *out, const char *name, eng_err *err);
/* The CLI name ("euler_a", "dpm++2m", ...); "unknown" for a value out of range. */
const char *sd_sampler_name(sd_sampler_kind k);
/* A1111's display name for the PNG parameters text: "Euler", "Euler a", "Heun", "DDIM",
 * "DPM++ 2M", "LCM"; with Karras " Karras" appended ("DPM++ 2M Karras"). Written to buf
 * (truncated to cap - 1 characters; cap >= 1) and returned. */
const char *sd_sampler_a1111_name(sd_sampler_kind k, sd_schedule_kind s, char *buf, size_t cap);

typedef struct sd_sampler sd_sampler; /* opaque: the plan + the multistep state */

/* Plans `steps` denoising steps (1..SD_SAMPLER_MAX_STEPS) of `kind` on latents of n floats.
 * strength in (0, 1]: 1 = txt2img; < 1 = img2img (diffusers' get_timesteps truncation, above).
 * cfg NULL: sd_scheduler_config_default. On ENG_OK the caller owns *out (sd_sampler_destroy).
 * Errors: ENG_E_INVALID_ARG (steps, strength, n, kind, schedule or config values out of range,
 * a strength that leaves no step, a timestep the spacing puts outside 0..num_train_timesteps-1
 * for DDIM), ENG_E_UNSUPPORTED (Karras for Euler a, DDIM or LCM; a beta_schedule other than
 * "scaled_linear" / "linear"), ENG_E_OOM. */
int sd_sampler_create(sd_sampler **out,
                      sd_sampler_kind kind,
                      sd_schedule_kind sched,
                      const sd_scheduler_config *cfg,
                      int steps,
                      double strength,
                      int64_t n,
                      eng_err *err);
void sd_sampler_destroy(sd_sampler *s); /* NULL is a no-op */

/* The number of model evaluations the plan makes (Heun: 2 per step but one on the last, as in
 * diffusers' timesteps array; img2img: only the truncated part). Calls are numbered
 * 0..count-1. */
int64_t sd_sampler_count(const sd_sampler *s);
/* The timestep passed to the UNet for call i (0 <= i < count): diffusers' timesteps[i] of the
 * plan, an integer except with Karras sigmas for Euler and Heun (float32 values then). */
double sd_sampler_timestep(const sd_sampler *s, int64_t i);
/* The factor the pipeline multiplies the latents by before the UNet for call i
 * (scale_model_input: 1 / sqrt(sigma^2 + 1) for Euler, Euler a and Heun, 1 for the others). */
double sd_sampler_input_scale(const sd_sampler *s, int64_t i);
/* Scale of the initial noise for txt2img (init_noise_sigma: the largest sigma for Euler, Euler a
 * and Heun, sqrt(sigma_max^2 + 1) with "leading" spacing; 1 for the others). */
double sd_sampler_init_sigma(const sd_sampler *s);
/* img2img: x (n, in/out) = scheduler.add_noise(x (the encoded image latents), noise (n standard
 * normals), the plan's first timestep). */
void sd_sampler_add_noise(const sd_sampler *s, float *x, const float *noise);
/* 1 when call i needs fresh standard-normal noise (Euler a every call; LCM on all but the last
 * step of its schedule; the others never). */
int sd_sampler_needs_noise(const sd_sampler *s, int64_t i);
/* One call: x (n, in/out) = scheduler.step(model_out (n, the CFG-combined prediction of the
 * model's kind), timestep i, x, noise). Calls must come in order 0, 1, ..., count-1.
 * noise: n standard normals when sd_sampler_needs_noise(s, i), else ignored (may be NULL).
 * x and model_out must not overlap noise; x may not alias model_out.
 * Errors: ENG_E_INVALID_ARG (a call out of order or past the plan, NULL noise when needed). */
int sd_sampler_step(
    sd_sampler *s, int64_t i, float *x, const float *model_out, const float *noise, eng_err *err);

#ifdef __cplusplus
}
#endif
#endif /* SD_SAMPLER_H */
