/* eng_err.c: error records, assertion failure, the default log sink. */
#include "eng_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eng_err_set(eng_err *err, int code, const char *fmt, ...) {
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void eng_err_prefix(eng_err *err, const char *fmt, ...) {
    char prefix[128], old[ENG_ERR_MSG_MAX];
    va_list ap;
    if (err == NULL) return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Build "prefix: old" by hand: the result is cut at the buffer's end, by design. */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    err->msg[n++] = ':';
    err->msg[n++] = ' ';
    old[sizeof old - 1] = '\0';
    const size_t rest = strlen(old);
    const size_t room = sizeof err->msg - 1 - n;
    const size_t take = rest < room ? rest : room;
    memcpy(err->msg + n, old, take);
    err->msg[n + take] = '\0';
}

void eng_err_clear(eng_err *err) {
    if (err == NULL) return;
    err->code = ENG_OK;
    err->msg[0] = '\0';
}

const char *eng_err_name(int code) {
    switch (code) {
    case ENG_OK: return "OK";
    case ENG_E_INVALID_ARG: return "INVALID_ARG";
    case ENG_E_IO: return "IO";
    case ENG_E_FORMAT: return "FORMAT";
    case ENG_E_UNSUPPORTED: return "UNSUPPORTED";
    case ENG_E_OOM: return "OOM";
    case ENG_E_DEVICE: return "DEVICE";
    case ENG_E_CANCELLED: return "CANCELLED";
    default: return "UNKNOWN";
    }
}

void eng_assert_fail(const char *expr, const char *file, int line, const char *func) {
    fprintf(stderr, "%s:%d: %s: assertion failed: %s (a bug in the engine, please report it)\n",
            file, line, func, expr);
    fflush(stderr);
    abort();
}

const char *eng_log_level_name(eng_log_level level) {
    static const char *const names[ENG_LOG_COUNT] = {"debug", "info", "warning", "error"};
    return (unsigned)level < ENG_LOG_COUNT ? names[level] : "?";
}

void eng_log(const eng_logger *logger, eng_log_level level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    const eng_log_level min = logger != NULL ? logger->min_level : ENG_LOG_INFO;
    if (level < min) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (logger != NULL && logger->fn != NULL) {
        logger->fn(logger->user, level, msg);
    } else {
        fprintf(stderr, "%s: %s\n", eng_log_level_name(level), msg);
    }
}
