/* eng_err.h: error codes, the error record passed back through every call, assertions, logging.
 *
 *   eng_err err = {0};
 *   if (eng_safetensors_open(&f, path, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *
 * A function that can fail because of its input, a file, the device or memory returns ENG_OK (0)
 * or a negative ENG_E_* code and fills its last parameter `eng_err *err` (may be NULL). There is
 * no thread-local "last error": jobs move between scheduler threads.
 * ENG_ASSERT is for programmer errors only (a NULL where the header promises non-NULL, shapes our
 * own code built); it stays on in every build type, prints the expression and aborts.
 * Threads: everything here is safe from any thread. */
#ifndef ENG_ERR_H
#define ENG_ERR_H

#include <stddef.h>
#include <stdint.h>

#include "eng_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Few, each telling the caller what to do. New values go at the end. */
enum {
    ENG_OK = 0,
    ENG_E_INVALID_ARG = -1, /* the caller passed something wrong: fix the call or the flag */
    ENG_E_IO = -2,          /* a file could not be opened, read or written */
    ENG_E_FORMAT = -3,      /* a file or buffer is malformed */
    ENG_E_UNSUPPORTED = -4, /* valid, but this build or device cannot do it */
    ENG_E_OOM = -5,         /* the memory budget or the device is exhausted */
    ENG_E_DEVICE = -6,      /* the GPU or its driver failed */
    ENG_E_CANCELLED = -7,   /* the job was cancelled */
    ENG_E_COUNT = 8         /* number of codes, ENG_OK included */
};

/* Longer than the 256 of conventions.md: out-of-memory messages list the largest owners. */
#define ENG_ERR_MSG_MAX 512

typedef struct eng_err {
    int code;                  /* ENG_OK or an ENG_E_* code */
    char msg[ENG_ERR_MSG_MAX]; /* one line, no trailing newline; "" when code == ENG_OK */
} eng_err;

/* Sets err->code and a printf-formatted message (truncated to fit) and returns `code`, so that
 * `return eng_err_set(err, ENG_E_FORMAT, "...", ...);` reads naturally. err may be NULL. */
int eng_err_set(eng_err *err, int code, const char *fmt, ...) ENG_PRINTF(3, 4);
/* Prepends "prefix: " to an existing message (for adding context on the way up). */
void eng_err_prefix(eng_err *err, const char *fmt, ...) ENG_PRINTF(2, 3);
void eng_err_clear(eng_err *err);
/* "OK", "INVALID_ARG", "IO", ...; "UNKNOWN" for anything else. Never NULL. */
const char *eng_err_name(int code);

/* Aborts with the expression, file and line. For bugs, never for bad input. */
void eng_assert_fail(const char *expr, const char *file, int line, const char *func);
#define ENG_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) eng_assert_fail(#cond, __FILE__, __LINE__, __func__);                         \
    } while (0)

/* ---- logging: a sink set on a context, never process-wide ---------------------------------- */
typedef enum {
    ENG_LOG_DEBUG,
    ENG_LOG_INFO,
    ENG_LOG_WARN,
    ENG_LOG_ERROR,
    ENG_LOG_COUNT
} eng_log_level;

typedef void (*eng_log_fn)(void *user, eng_log_level level, const char *msg);

typedef struct eng_logger {
    eng_log_fn fn;           /* NULL: write to stderr */
    void *user;              /* passed to fn */
    eng_log_level min_level; /* messages below are dropped */
} eng_logger;

/* Formats and delivers one message; logger may be NULL (stderr, INFO and above). */
void eng_log(const eng_logger *logger, eng_log_level level, const char *fmt, ...) ENG_PRINTF(3, 4);
const char *eng_log_level_name(eng_log_level level);

#ifdef __cplusplus
}
#endif
#endif /* ENG_ERR_H */
