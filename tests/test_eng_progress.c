/* test_eng_progress.c: eng.progress.* — the PLAIN and TTY line formats, when lines are printed,
 * AUTO's choice (terminal, CI), throttling, rates below one per second, argument errors. Every
 * case writes to a tmpfile() and runs on a fake clock, so the expected text is exact. */
#define _XOPEN_SOURCE 700
#include "eng_progress.h"

#include <fcntl.h>

#include "eng_test.h"

typedef struct fake_clock {
    double t;
} fake_clock;

static double fake_now(void *user) {
    return ((fake_clock *)user)->t;
}

/* Everything written to f so far, as a string in buf (f stays open for more writes). */
static const char *contents(FILE *f, char *buf, size_t n) {
    size_t got;
    fflush(f);
    rewind(f);
    got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fseek(f, 0, SEEK_END);
    return buf;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s != '\0'; s++)
        n += *s == c;
    return n;
}

static void params_for(eng_progress_params *pp,
                       FILE *out,
                       fake_clock *clk,
                       eng_progress_mode mode,
                       const char *label,
                       int64_t total) {
    eng_progress_params_init(pp);
    pp->out = out;
    pp->mode = mode;
    pp->label = label;
    pp->total = total;
    pp->clock = fake_now;
    pp->clock_user = clk;
}

/* 20 steps of 0.5 s: a line at each tenth (2, 4, ..., 18), none at 20 (the finish line's). */
static int test_plain_lines(void) {
    static char buf[8192];
    FILE *f = tmpfile();
    fake_clock clk = {100.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_PLAIN, "train", 20);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_PLAIN);
    for (int i = 1; i <= 20; i++) {
        clk.t += 0.5;
        eng_progress_add(bar, 1, i == 9 ? "loss 0.0123" : NULL);
        if (i == 1) CHECK(contents(f, buf, sizeof buf)[0] == '\0'); /* 5%: nothing yet */
    }
    CHECK_EQ_I64(eng_progress_done(bar), 20);
    contents(f, buf, sizeof buf);
    CHECK_EQ_I64(count_char(buf, '\n'), 9);
    CHECK(starts_with(buf, "train: 2/20 (10%) 2.00 it/s, elapsed 00:01, eta 00:09\n"));
    CHECK_CONTAINS(buf, "\ntrain: 10/20 (50%) 2.00 it/s, elapsed 00:05, eta 00:05 loss 0.0123\n");
    CHECK_CONTAINS(buf, "\ntrain: 18/20 (90%) 2.00 it/s, elapsed 00:09, eta 00:01 loss 0.0123\n");
    CHECK(strstr(buf, "\r") == NULL && strstr(buf, "\x1b") == NULL);
    clk.t += 0.5;
    eng_progress_finish(bar, "psnr 24.1");
    eng_progress_finish(bar, "again");  /* once only */
    eng_progress_update(bar, 25, NULL); /* ignored after finish */
    contents(f, buf, sizeof buf);
    CHECK_EQ_I64(count_char(buf, '\n'), 10);
    CHECK_CONTAINS(buf, "\ntrain: 20/20 (100%) 1.90 it/s, done in 00:10 psnr 24.1\n");
    CHECK_EQ_I64(eng_progress_done(bar), 20);
    eng_progress_destroy(bar);
    fclose(f);
    return 0;
}

/* Known total in plain mode with sparse updates: the interval also prints. */
static int test_plain_interval(void) {
    static char buf[4096];
    FILE *f = tmpfile();
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_PLAIN, "", 1000);
    pp.plain_interval_s = 2.0;
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    for (int i = 1; i <= 9; i++) { /* 1 per second, far from any tenth */
        clk.t += 1.0;
        eng_progress_update(bar, i, NULL);
    }
    contents(f, buf, sizeof buf);
    CHECK_EQ_I64(count_char(buf, '\n'), 4); /* t = 2, 4, 6, 8 */
    CHECK(starts_with(buf, "2/1000 (0%) 1.00 it/s, elapsed 00:02, eta 16:38\n"));
    eng_progress_destroy(bar); /* no finish: nothing more printed in plain mode */
    CHECK_EQ_I64(count_char(contents(f, buf, sizeof buf), '\n'), 4);
    fclose(f);
    return 0;
}

static int test_tty_line(void) {
    static char buf[16384];
    FILE *f = tmpfile();
    fake_clock clk = {50.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "sample", 20);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    for (int i = 1; i <= 9; i++) {
        clk.t += 0.5;
        eng_progress_update(bar, i, "loss 0.5");
    }
    contents(f, buf, sizeof buf);
    CHECK_EQ_I64(count_char(buf, '\r'), 9);
    CHECK_EQ_I64(count_char(buf, '\n'), 0);
    CHECK_CONTAINS(buf,
                   "\rsample   5% |#                   | 1/20 [00:00<00:09, 2.00 it/s] loss 0.5"
                   "\x1b[K");
    CHECK_CONTAINS(buf,
                   "\rsample  45% |#########           | 9/20 [00:04<00:05, 2.00 it/s] loss 0.5"
                   "\x1b[K");
    for (int i = 10; i <= 20; i++) {
        clk.t += 0.5;
        eng_progress_update(bar, i, "");
    }
    eng_progress_finish(bar, NULL);
    contents(f, buf, sizeof buf);
    CHECK_CONTAINS(buf,
                   "\rsample 100% |####################| 20/20 [00:10<00:00, 2.00 it/s]\x1b[K");
    {
        const char *want = "\rsample 100% |####################| 20/20 [00:10, 2.00 it/s]\x1b[K\n";
        const size_t n = strlen(buf), w = strlen(want);
        CHECK(n >= w && strcmp(buf + n - w, want) == 0); /* the finish line ends the output */
    }
    CHECK_EQ_I64(count_char(buf, '\n'), 1);
    eng_progress_destroy(bar);
    fclose(f);
    return 0;
}

static int test_unknown_total(void) {
    static char buf[4096];
    FILE *f = tmpfile();
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "scan", 0);
    pp.unit = "img";
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    for (int i = 0; i < 7; i++) {
        clk.t += 0.5;
        eng_progress_add(bar, 1, NULL);
    }
    eng_progress_destroy(bar); /* closes the open line */
    contents(f, buf, sizeof buf);
    CHECK_CONTAINS(buf, "\rscan 7 img [00:03, 2.00 img/s]\x1b[K\n");
    CHECK(strchr(buf, '%') == NULL && strchr(buf, '|') == NULL);
    fclose(f);

    f = tmpfile();
    CHECK(f != NULL);
    clk.t = 0;
    params_for(&pp, f, &clk, ENG_PROGRESS_PLAIN, "count", 0);
    pp.unit = "img";
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    for (int i = 0; i < 12; i++) {
        clk.t += 1.0;
        eng_progress_add(bar, 1, NULL);
    }
    eng_progress_finish(bar, NULL);
    eng_progress_destroy(bar);
    CHECK(strcmp(contents(f, buf, sizeof buf), "count: 5 img, 1.00 img/s, elapsed 00:05\n"
                                               "count: 10 img, 1.00 img/s, elapsed 00:10\n"
                                               "count: 12 img, 1.00 img/s, done in 00:12\n") == 0);
    fclose(f);
    return 0;
}

/* AUTO: a terminal gives TTY unless CI is set (non-empty); a file always gives PLAIN. */
static int test_ci_forces_plain(void) {
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    FILE *f = tmpfile(), *tty = NULL;
    int master = -1, slave = -1, have_tty = 0;
    CHECK(f != NULL);
    setenv("TERM", "xterm", 1);
    unsetenv("CI");
    params_for(&pp, f, &clk, ENG_PROGRESS_AUTO, "x", 10);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_PLAIN);
    eng_progress_destroy(bar);

    /* A pseudo-terminal stands in for a real one. */
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 && ptsname(master) != NULL) {
        slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        if (slave >= 0) tty = fdopen(slave, "w");
        have_tty = tty != NULL && isatty(fileno(tty));
    }
    if (have_tty) {
        params_for(&pp, tty, &clk, ENG_PROGRESS_AUTO, "x", 10);
        CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
        CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_TTY);
        eng_progress_destroy(bar);
        setenv("CI", "", 1); /* empty counts as unset */
        CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
        CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_TTY);
        eng_progress_destroy(bar);
        setenv("CI", "true", 1);
        CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
        CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_PLAIN);
        eng_progress_destroy(bar);
        unsetenv("CI");
        setenv("TERM", "dumb", 1); /* no cursor control either */
        CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
        CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_PLAIN);
        eng_progress_destroy(bar);
    } else {
        fprintf(stderr, "no pseudo-terminal: checked the file case only\n");
    }
    /* CI with a file: PLAIN, and the forced modes ignore the environment. */
    setenv("CI", "1", 1);
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "x", 10);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    CHECK_EQ_I64(eng_progress_mode_used(bar), ENG_PROGRESS_TTY);
    eng_progress_destroy(bar);
    unsetenv("CI");
    if (tty != NULL)
        fclose(tty);
    else if (slave >= 0)
        close(slave);
    if (master >= 0) close(master);
    fclose(f);
    return 0;
}

/* Redraws are throttled to one per tty_interval_s (0.1 s): ten updates within 0.01 s draw once;
 * reaching the total always draws. */
static int test_throttle(void) {
    static char buf[8192];
    FILE *f = tmpfile();
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "t", 1000);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    for (int i = 1; i <= 10; i++) {
        clk.t += 0.001;
        eng_progress_add(bar, 1, NULL);
    }
    CHECK_EQ_I64(count_char(contents(f, buf, sizeof buf), '\r'), 1);
    CHECK_CONTAINS(buf, " 1/1000 ");
    clk.t += 0.05;
    eng_progress_add(bar, 1, NULL); /* 0.06 s after the draw: still throttled */
    CHECK_EQ_I64(count_char(contents(f, buf, sizeof buf), '\r'), 1);
    clk.t += 0.05;
    eng_progress_add(bar, 1, NULL); /* 0.11 s: redrawn */
    CHECK_EQ_I64(count_char(contents(f, buf, sizeof buf), '\r'), 2);
    CHECK_CONTAINS(buf, " 12/1000 ");
    clk.t += 0.001;
    eng_progress_update(bar, 1000, NULL); /* the total: drawn at once */
    CHECK_EQ_I64(count_char(contents(f, buf, sizeof buf), '\r'), 3);
    CHECK_CONTAINS(buf, "100% |");
    eng_progress_destroy(bar);
    fclose(f);
    return 0;
}

/* Steps slower than one per second show seconds per unit; long runs show hours. */
static int test_slow_rate(void) {
    static char buf[4096];
    FILE *f = tmpfile();
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_PLAIN, "slow", 5);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    clk.t = 3.25;
    eng_progress_add(bar, 1, NULL);
    CHECK(strcmp(contents(f, buf, sizeof buf),
                 "slow: 1/5 (20%) 3.25 s/it, elapsed 00:03, eta 00:13\n") == 0);
    eng_progress_destroy(bar);
    fclose(f);

    f = tmpfile();
    CHECK(f != NULL);
    clk.t = 0;
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "long", 4);
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    clk.t = 3725.0;
    eng_progress_update(bar, 1, NULL);
    CHECK_CONTAINS(contents(f, buf, sizeof buf), "1/4 [1:02:05<3:06:15, 3725.00 s/it]");
    eng_progress_destroy(bar);
    fclose(f);
    return 0;
}

/* A line wider than the terminal is cut to columns - 1 so that '\r' redraws stay on one row. */
static int test_columns(void) {
    static char buf[8192];
    FILE *f = tmpfile();
    fake_clock clk = {0.0};
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    const char *line, *end;
    CHECK(f != NULL);
    params_for(&pp, f, &clk, ENG_PROGRESS_TTY, "cut", 10);
    pp.columns = 40;
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    clk.t = 1;
    eng_progress_update(bar, 3, "a very long suffix that would wrap the terminal line");
    contents(f, buf, sizeof buf);
    line = strchr(buf, '\r');
    CHECK(line != NULL);
    end = strstr(line, "\x1b[K");
    CHECK(end != NULL);
    CHECK_EQ_I64(end - (line + 1), 39);
    CHECK(strncmp(line + 1, "cut  30% |######              | 3/10 [0\x1b[K", 39 + 3) == 0);
    eng_progress_destroy(bar);
    fclose(f);
    return 0;
}

static int test_bad_params(void) {
    eng_progress_params pp;
    eng_progress *bar = NULL;
    eng_err err = {0};
    eng_progress_params_init(&pp);
    pp.total = -3;
    CHECK_EQ_I64(eng_progress_create(&bar, &pp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "total is -3");
    CHECK(bar == NULL);
    eng_progress_params_init(&pp);
    pp.bar_width = 0;
    CHECK_EQ_I64(eng_progress_create(&bar, &pp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "bar_width 0");
    eng_progress_params_init(&pp);
    pp.plain_interval_s = -1;
    CHECK_EQ_I64(eng_progress_create(&bar, &pp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "plain_interval_s -1");
    eng_progress_params_init(&pp);
    pp.mode = (eng_progress_mode)7;
    CHECK_EQ_I64(eng_progress_create(&bar, &pp, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "mode is 7");
    /* Defaults: stderr, the real clock. */
    eng_progress_params_init(&pp);
    pp.mode = ENG_PROGRESS_PLAIN;
    CHECK_OK(eng_progress_create(&bar, &pp, &err), &err);
    eng_progress_add(bar, 1, NULL);
    CHECK_EQ_I64(eng_progress_done(bar), 1);
    eng_progress_destroy(bar);
    eng_progress_destroy(NULL);
    return 0;
}

static const eng_test_case cases[] = {
    {"plain_lines", test_plain_lines},
    {"plain_interval", test_plain_interval},
    {"tty_line", test_tty_line},
    {"unknown_total", test_unknown_total},
    {"ci_forces_plain", test_ci_forces_plain},
    {"throttle", test_throttle},
    {"slow_rate", test_slow_rate},
    {"columns", test_columns},
    {"bad_params", test_bad_params},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
