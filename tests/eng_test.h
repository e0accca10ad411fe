/* eng_test.h: the small harness every test binary uses (header only).
 *
 *   static int test_budget_exceeded(void) { ...; CHECK(rc == ENG_E_OOM); return 0; }
 *   static const eng_test_case cases[] = {{"budget_exceeded", test_budget_exceeded}, ...};
 *   int main(int argc, char **argv) { return eng_test_main(argc, argv, cases, ENG_TEST_N(cases)); }
 *
 * `test_x --case NAME` runs one case (what CTest calls), no argument runs all, `--list` lists.
 * A case returns 0 (pass), 1 (fail) or ENG_TEST_SKIP (77: CTest shows it as skipped, e.g. no GPU).
 * Random inputs use the seed from ENG_TEST_SEED (default 1234), printed so a failure can be
 * replayed. Data: ENGINE_DATA_DIR, else the CMake setting ENG_DATA_DIR (../shared/data). */
#ifndef ENG_TEST_H
#define ENG_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENG_TEST_SKIP 77
#define ENG_TEST_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef int (*eng_test_fn)(void);
typedef struct eng_test_case {
    const char *name;
    eng_test_fn fn;
} eng_test_case;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Checks that an engine call returned ENG_OK; prints the code and message otherwise. */
#define CHECK_OK(expr, errp)                                                                       \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != 0) {                                                                      \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, check_rc_,   \
                    (errp) != NULL ? (errp)->msg : "");                                            \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_I64(a, b)                                                                         \
    do {                                                                                           \
        int64_t check_a_ = (int64_t)(a), check_b_ = (int64_t)(b);                                  \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %" PRId64 ", %s == %" PRId64 "\n",      \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_);                               \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Checks that `msg` contains `needle` (error messages must name what went wrong). */
#define CHECK_CONTAINS(msg, needle)                                                                \
    do {                                                                                           \
        if (strstr((msg), (needle)) == NULL) {                                                     \
            fprintf(stderr, "%s:%d: expected \"%s\" in: %s\n", __FILE__, __LINE__, (needle),       \
                    (msg));                                                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static inline uint64_t eng_test_seed(void) {
    static uint64_t seed = 0;
    static int printed = 0;
    if (!printed) {
        const char *s = getenv("ENG_TEST_SEED");
        seed = s != NULL ? strtoull(s, NULL, 0) : 1234u;
        fprintf(stderr, "seed %" PRIu64 " (set ENG_TEST_SEED to replay)\n", seed);
        printed = 1;
    }
    return seed;
}

static inline const char *eng_test_data_dir(void) {
    const char *d = getenv("ENGINE_DATA_DIR");
#ifdef ENG_TEST_DATA_DIR
    if (d == NULL || d[0] == '\0') d = ENG_TEST_DATA_DIR;
#endif
    return d != NULL ? d : "../shared/data";
}

/* A fresh per-process directory under $TMPDIR (or /tmp) for files a test writes. */
static inline const char *eng_test_tmpdir(void) {
    static char dir[512];
    if (dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/engtest.%ld", base != NULL ? base : "/tmp", (long)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

static inline int eng_test_main(int argc, char **argv, const eng_test_case *cases, int n) {
    const char *only = NULL;
    int failed = 0, skipped = 0, ran = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (int c = 0; c < n; c++)
                printf("%s\n", cases[c].name);
            return 0;
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--list | --case NAME]\n", argv[0]);
            return 2;
        }
    }
    for (int c = 0; c < n; c++) {
        if (only != NULL && strcmp(only, cases[c].name) != 0) continue;
        ran++;
        int rc = cases[c].fn();
        if (rc == ENG_TEST_SKIP) {
            printf("SKIP %s\n", cases[c].name);
            skipped++;
        } else if (rc != 0) {
            printf("FAIL %s\n", cases[c].name);
            failed++;
        } else {
            printf("PASS %s\n", cases[c].name);
        }
        fflush(stdout);
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named %s\n", only != NULL ? only : "(any)");
        return 2;
    }
    if (failed) return 1;
    return (skipped == ran) ? ENG_TEST_SKIP : 0;
}

#endif /* ENG_TEST_H */
