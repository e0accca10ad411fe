/* eng_progress.h: progress bars for long jobs (sampling steps, NeRF training, data loading).
 *
 *   eng_progress_params pp; eng_progress_params_init(&pp);
 *   pp.label = "sample"; pp.total = 20;
 *   eng_progress *bar = NULL; eng_err err;
 *   if (eng_progress_create(&bar, &pp, &err) != ENG_OK) return err.code;
 *   for (int i = 0; i < 20; i++) { step(); eng_progress_add(bar, 1, NULL); }
 *   eng_progress_finish(bar, NULL);
 *   eng_progress_destroy(bar);
 *
 * Two kinds of output:
 *   TTY   one line redrawn in place ('\r', then ESC[K to clear the rest), at most every
 *         tty_interval_s (default 0.1 s, so ~10 redraws/s), always when the count reaches total:
 *           sample  45% |#########           | 9/20 [00:03<00:04, 2.51 it/s] loss 0.0123
 *         With an unknown total (0):  sample 9 it [00:03, 2.51 it/s] loss 0.0123
 *   PLAIN one line per report, for logs and CI: every plain_interval_s (default 5 s) and each
 *         time the count crosses a tenth of a known total:
 *           sample: 9/20 (45%) 2.51 it/s, elapsed 00:03, eta 00:04 loss 0.0123
 *         With an unknown total:  sample: 9 it, 2.51 it/s, elapsed 00:03 loss 0.0123
 * Finishing prints the final line: TTY redraws with the total time and ends the line with '\n';
 * PLAIN prints  "sample: 20/20 (100%) 2.50 it/s, done in 00:08 loss 0.0123".
 * ENG_PROGRESS_AUTO picks TTY when `out` is a terminal, the environment variable CI is unset or
 * empty and TERM is not "dumb"; otherwise PLAIN.
 *
 * Rate and ETA use the average since creation (count / elapsed), not a moving average: steady
 * and reproducible for the constant-rate loops we run; a slow first step (warm-up) makes the
 * early ETA pessimistic, and it converges as the run goes on. A rate below 1/s is shown as
 * seconds per unit ("3.20 s/it"). Times read MM:SS, or H:MM:SS from one hour.
 * The clock is injectable (tests use a fake one); the default is CLOCK_MONOTONIC.
 *
 * Ownership: create/destroy; the label, unit and suffix strings are copied. `out` is borrowed
 * and must outlive the bar. Threads: update/add/finish are safe from any thread (one mutex per
 * bar), so pool workers may call eng_progress_add concurrently. Output errors are ignored: a
 * progress bar never fails a job. */
#ifndef ENG_PROGRESS_H
#define ENG_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_progress eng_progress; /* opaque */

typedef enum eng_progress_mode {
    ENG_PROGRESS_AUTO,  /* TTY on a terminal without CI set, else PLAIN */
    ENG_PROGRESS_TTY,   /* in-place line */
    ENG_PROGRESS_PLAIN, /* periodic lines */
    ENG_PROGRESS_MODE_COUNT
} eng_progress_mode;

/* Seconds from any fixed origin; must not go backwards. */
typedef double (*eng_progress_clock_fn)(void *user);

typedef struct eng_progress_params {
    FILE *out;                   /* NULL: stderr */
    const char *label;           /* NULL: none; copied (first 64 bytes) */
    int64_t total;               /* expected count; 0 = unknown (count and rate only) */
    const char *unit;            /* NULL: "it"; copied (first 16 bytes) */
    eng_progress_mode mode;      /* default ENG_PROGRESS_AUTO */
    double plain_interval_s;     /* PLAIN: seconds between lines (default 5) */
    double tty_interval_s;       /* TTY: least seconds between redraws (default 0.1) */
    int bar_width;               /* TTY: characters inside |...| (default 20) */
    int columns;                 /* TTY: line width cap; 0 = ask the terminal, else unlimited */
    eng_progress_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_user;            /* passed to clock */
} eng_progress_params;

/* The defaults above. */
void eng_progress_params_init(eng_progress_params *p);
/* Starts the clock. On ENG_OK the caller owns *out (free with eng_progress_destroy).
 * Errors: ENG_E_INVALID_ARG (negative total, interval or width, unknown mode), ENG_E_OOM. */
int eng_progress_create(eng_progress **out, const eng_progress_params *params, eng_err *err);
/* Ends a TTY line left open (no final report: call eng_progress_finish for that). NULL: no-op. */
void eng_progress_destroy(eng_progress *p);

/* Sets the count done so far (absolute; may exceed total) and reports when due. `suffix` is
 * free text shown after the numbers ("loss 0.0123 psnr 24.1"); NULL keeps the previous one, ""
 * clears it; copied (first 256 bytes). Ignored after eng_progress_finish. */
void eng_progress_update(eng_progress *p, int64_t done, const char *suffix);
/* Adds n to the count; otherwise as eng_progress_update. */
void eng_progress_add(eng_progress *p, int64_t n, const char *suffix);
/* Prints the final line (see above) once; later calls do nothing. */
void eng_progress_finish(eng_progress *p, const char *suffix);

/* The count so far and the mode in use (AUTO resolved to TTY or PLAIN). */
int64_t eng_progress_done(const eng_progress *p);
eng_progress_mode eng_progress_mode_used(const eng_progress *p);

#ifdef __cplusplus
}
#endif
#endif /* ENG_PROGRESS_H */
