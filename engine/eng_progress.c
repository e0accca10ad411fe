/* eng_progress.c: the progress bar: when to report, and the TTY and PLAIN line formats. */
#define _POSIX_C_SOURCE 200809L
#include "eng_progress.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define LABEL_MAX  64
#define UNIT_MAX   16
#define SUFFIX_MAX 256
#define LINE_MAX_  1024 /* label + numbers + bar (<= BAR_MAX) + suffix fit */
#define BAR_MAX    200

struct eng_progress {
    pthread_mutex_t mu;
    FILE *out;
    char label[LABEL_MAX + 1];
    char unit[UNIT_MAX + 1];
    char suffix[SUFFIX_MAX + 1];
    int64_t total, done;
    eng_progress_mode mode; /* TTY or PLAIN */
    double plain_interval, tty_interval;
    int bar_width, columns; /* columns 0: no cap */
    eng_progress_clock_fn clock;
    void *clock_user;
    double t0;           /* creation time */
    double last_report;  /* time of the last line or redraw */
    int64_t last_decile; /* PLAIN: the last tenth of total reported */
    int64_t last_drawn;  /* TTY: the count on screen, -1 before the first draw */
    int line_open;       /* TTY: a line is on screen without its newline */
    int finished;
};

static double monotonic_seconds(void *user) {
    struct timespec ts;
    (void)user;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Copies at most `max` bytes of src, not splitting a UTF-8 character. */
static void copy_trunc(char *dst, const char *src, size_t max) {
    size_t n = strlen(src);
    if (n > max) {
        n = max;
        while (n > 0 && ((uint8_t)src[n] & 0xC0u) == 0x80u)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void eng_progress_params_init(eng_progress_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->mode = ENG_PROGRESS_AUTO;
    p->plain_interval_s = 5.0;
    p->tty_interval_s = 0.1;
    p->bar_width = 20;
}

static eng_progress_mode resolve_mode(eng_progress_mode m, FILE *out) {
    const char *ci, *term;
    if (m != ENG_PROGRESS_AUTO) return m;
    ci = getenv("CI");
    term = getenv("TERM");
    if (ci != NULL && ci[0] != '\0') return ENG_PROGRESS_PLAIN;
    if (term != NULL && strcmp(term, "dumb") == 0) return ENG_PROGRESS_PLAIN;
    return isatty(fileno(out)) ? ENG_PROGRESS_TTY : ENG_PROGRESS_PLAIN;
}

static int terminal_columns(FILE *out) {
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 0;
}

int eng_progress_create(eng_progress **out, const eng_progress_params *params, eng_err *err) {
    static const char fn[] = "eng_progress_create";
    int rc = ENG_OK;
    eng_progress *p = NULL;
    ENG_ASSERT(out != NULL && params != NULL);
    *out = NULL;
    if (params->total < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: total is %jd, expected >= 0 (0 = unknown)",
                         fn, (intmax_t)params->total);
        goto done;
    }
    if ((int)params->mode < 0 || params->mode >= ENG_PROGRESS_MODE_COUNT) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "%s: mode is %d, expected AUTO, TTY or PLAIN", fn,
                         (int)params->mode);
        goto done;
    }
    if (!(params->plain_interval_s >= 0) || !(params->tty_interval_s >= 0)) { /* NaN too */
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: plain_interval_s %g and tty_interval_s %g must be >= 0", fn,
                         params->plain_interval_s, params->tty_interval_s);
        goto done;
    }
    if (params->bar_width < 1 || params->bar_width > BAR_MAX || params->columns < 0) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "%s: bar_width %d (expected 1..%d) or columns %d (expected >= 0)", fn,
                         params->bar_width, BAR_MAX, params->columns);
        goto done;
    }
    p = (eng_progress *)calloc(1, sizeof *p);
    if (p == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "%s: out of memory", fn);
        goto done;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        p = NULL;
        rc = eng_err_set(err, ENG_E_OOM, "%s: cannot create the mutex", fn);
        goto done;
    }
    p->out = params->out != NULL ? params->out : stderr;
    copy_trunc(p->label, params->label != NULL ? params->label : "", LABEL_MAX);
    copy_trunc(p->unit, params->unit != NULL && params->unit[0] != '\0' ? params->unit : "it",
               UNIT_MAX);
    p->total = params->total;
    p->mode = resolve_mode(params->mode, p->out);
    p->plain_interval = params->plain_interval_s;
    p->tty_interval = params->tty_interval_s;
    p->bar_width = params->bar_width;
    p->columns = params->columns;
    if (p->columns == 0 && p->mode == ENG_PROGRESS_TTY) p->columns = terminal_columns(p->out);
    p->clock = params->clock != NULL ? params->clock : monotonic_seconds;
    p->clock_user = params->clock_user;
    p->t0 = p->clock(p->clock_user);
    p->last_report = p->t0;
    p->last_drawn = -1;
    *out = p;
done:
    return rc;
}

void eng_progress_destroy(eng_progress *p) {
    if (p == NULL) return;
    if (p->line_open) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* "MM:SS", or "H:MM:SS" from one hour; "?" when unknown or absurd. */
static void fmt_time(char *buf, size_t n, double s) {
    int64_t t;
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    t = (int64_t)s;
    if (t >= 3600) {
        snprintf(buf, n, "%jd:%02d:%02d", (intmax_t)(t / 3600), (int)(t / 60 % 60), (int)(t % 60));
    } else {
        snprintf(buf, n, "%02d:%02d", (int)(t / 60), (int)(t % 60));
    }
}

/* "2.51 it/s", or "3.20 s/it" below one per second, or "? it/s" before the first unit. */
static void fmt_rate(char *buf, size_t n, double rate, const char *unit) {
    if (!(rate > 0) || !isfinite(rate)) {
        snprintf(buf, n, "? %s/s", unit);
    } else if (rate >= 1.0) {
        snprintf(buf, n, "%.2f %s/s", rate, unit);
    } else {
        snprintf(buf, n, "%.2f s/%s", 1.0 / rate, unit);
    }
}

/* Percent done, floored, clamped to 0..100 (total > 0). */
static int percent(int64_t done, int64_t total) {
    double f = floor(100.0 * (double)done / (double)total);
    return f < 0 ? 0 : f > 100 ? 100 : (int)f;
}

/* Builds the current line (no '\r', no newline) into buf. `final`: the finish line. */
static void format_line(const eng_progress *p, char *buf, size_t n, double now, int final) {
    const double elapsed = now - p->t0 > 0 ? now - p->t0 : 0;
    const double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char el[32], eta[32], rt[64];
    size_t o = 0;
    fmt_time(el, sizeof el, elapsed);
    fmt_rate(rt, sizeof rt, rate, p->unit);
    if (p->total > 0 && rate > 0 && p->done <= p->total) {
        fmt_time(eta, sizeof eta, (double)(p->total - p->done) / rate);
    } else {
        fmt_time(eta, sizeof eta, p->total > 0 && p->done >= p->total ? 0 : -1);
    }
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (o < n) {                                                                               \
            int w_ = snprintf(buf + o, n - o, __VA_ARGS__);                                        \
            if (w_ > 0) o += (size_t)w_;                                                           \
        }                                                                                          \
    } while (0)
    if (p->mode == ENG_PROGRESS_TTY) {
        if (p->label[0] != '\0') APPEND("%s ", p->label);
        if (p->total > 0) {
            char bar[BAR_MAX + 1];
            const int64_t d = p->done < p->total ? p->done : p->total;
            const int fill = (int)((double)p->bar_width * (double)d / (double)p->total);
            memset(bar, '#', (size_t)fill);
            memset(bar + fill, ' ', (size_t)(p->bar_width - fill));
            bar[p->bar_width] = '\0';
            APPEND("%3d%% |%s| %jd/%jd ", percent(p->done, p->total), bar, (intmax_t)p->done,
                   (intmax_t)p->total);
            if (final) {
                APPEND("[%s, %s]", el, rt);
            } else {
                APPEND("[%s<%s, %s]", el, eta, rt);
            }
        } else {
            APPEND("%jd %s [%s, %s]", (intmax_t)p->done, p->unit, el, rt);
        }
    } else {
        if (p->label[0] != '\0') APPEND("%s: ", p->label);
        if (p->total > 0) {
            APPEND("%jd/%jd (%d%%) %s, ", (intmax_t)p->done, (intmax_t)p->total,
                   percent(p->done, p->total), rt);
        } else {
            APPEND("%jd %s, %s, ", (intmax_t)p->done, p->unit, rt);
        }
        if (final) {
            APPEND("done in %s", el);
        } else if (p->total > 0) {
            APPEND("elapsed %s, eta %s", el, eta);
        } else {
            APPEND("elapsed %s", el);
        }
    }
    if (p->suffix[0] != '\0') APPEND(" %s", p->suffix);
#undef APPEND
    if (o >= n) o = n - 1;
    /* A line wider than the terminal would wrap and break the '\r' redraw: cut it. */
    if (p->mode == ENG_PROGRESS_TTY && p->columns > 1 && o > (size_t)p->columns - 1) {
        o = (size_t)p->columns - 1;
        while (o > 0 && ((uint8_t)buf[o] & 0xC0u) == 0x80u)
            o--;
    }
    buf[o] = '\0';
}

static void emit(eng_progress *p, double now, int final) {
    char line[LINE_MAX_];
    format_line(p, line, sizeof line, now, final);
    if (p->mode == ENG_PROGRESS_TTY) {
        fprintf(p->out, "\r%s\x1b[K", line);
        if (final) {
            fputc('\n', p->out);
            p->line_open = 0;
        } else {
            p->line_open = 1;
        }
        p->last_drawn = p->done;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_report = now;
}

/* Decides whether the current count is due for a report; caller holds the mutex. */
static void maybe_report(eng_progress *p) {
    const double now = p->clock(p->clock_user);
    int due = 0;
    if (p->mode == ENG_PROGRESS_TTY) {
        due = p->last_drawn < 0 || now - p->last_report >= p->tty_interval ||
              (p->total > 0 && p->done >= p->total && p->last_drawn < p->total);
    } else {
        int64_t decile = -1;
        if (p->total > 0) {
            /* Tenths 1..9 only: 100% is the finish line's to print. */
            const double f = floor(10.0 * (double)p->done / (double)p->total);
            decile = f < 0 ? 0 : f > 9 ? 9 : (int64_t)f;
            if (decile > p->last_decile) due = 1;
        }
        if (now - p->last_report >= p->plain_interval) due = 1;
        if (due && decile > p->last_decile) p->last_decile = decile;
    }
    if (due) emit(p, now, 0);
}

static void set_suffix(eng_progress *p, const char *suffix) {
    if (suffix != NULL) copy_trunc(p->suffix, suffix, SUFFIX_MAX);
}

void eng_progress_update(eng_progress *p, int64_t done, const char *suffix) {
    ENG_ASSERT(p != NULL);
    pthread_mutex_lock(&p->mu);
    if (!p->finished) {
        p->done = done > 0 ? done : 0;
        set_suffix(p, suffix);
        maybe_report(p);
    }
    pthread_mutex_unlock(&p->mu);
}

void eng_progress_add(eng_progress *p, int64_t n, const char *suffix) {
    ENG_ASSERT(p != NULL);
    pthread_mutex_lock(&p->mu);
    if (!p->finished) {
        if (n > 0 && p->done > INT64_MAX - n) {
            p->done = INT64_MAX;
        } else {
            p->done = p->done + n > 0 ? p->done + n : 0;
        }
        set_suffix(p, suffix);
        maybe_report(p);
    }
    pthread_mutex_unlock(&p->mu);
}

void eng_progress_finish(eng_progress *p, const char *suffix) {
    ENG_ASSERT(p != NULL);
    pthread_mutex_lock(&p->mu);
    if (!p->finished) {
        set_suffix(p, suffix);
        emit(p, p->clock(p->clock_user), 1);
        p->finished = 1;
    }
    pthread_mutex_unlock(&p->mu);
}

int64_t eng_progress_done(const eng_progress *p) {
    int64_t d;
    ENG_ASSERT(p != NULL);
    /* The mutex is not part of the observable state: locking it does not change the bar. */
    pthread_mutex_lock((pthread_mutex_t *)&p->mu);
    d = p->done;
    pthread_mutex_unlock((pthread_mutex_t *)&p->mu);
    return d;
}

eng_progress_mode eng_progress_mode_used(const eng_progress *p) {
    ENG_ASSERT(p != NULL);
    return p->mode;
}
