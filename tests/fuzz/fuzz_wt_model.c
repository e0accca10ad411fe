/* fuzz_wt_model.c: libFuzzer harness for the checkpoint opener wt_model_open: the diffusers
 * config files (read with cJSON) and the ldm files' metadata keys. The weights are fixed (the
 * tiny preset, written once per process with wt_make_checkpoint into a temporary folder); what
 * gets fuzzed is what those formats let a file say about the architecture beside the tensors.
 *
 * Input: sections separated by the byte 0xFF (never part of UTF-8 text, so JSON stays intact).
 *   diffusers (the default): model_index.json, unet/config.json, text_encoder/config.json,
 *     scheduler/scheduler_config.json, vae/config.json, in that order; an empty or missing
 *     section means the file is absent, sections after the fifth are ignored.
 *   "ldm" 0xFF key 0xFF value 0xFF key 0xFF value ...: the tiny ldm file rewritten with these
 *     __metadata__ pairs (a later duplicate key is dropped; a NUL ends a string).
 *
 * Oracle: besides ASan/UBSan/LSan (UBSan halts here, see __ubsan_default_options), the harness
 * works out from the input, with its own reading of the rules in wt.h, whether the open must
 * succeed and with which heads, activation, family and prediction type:
 *   - unet/config.json "num_attention_heads", else "attention_head_dim": a positive integer or a
 *     list of them (exactly one per level) that divides each level's channels; absent or null:
 *     the family rule;
 *   - text_encoder/config.json "num_attention_heads" (a positive integer dividing the hidden
 *     size; absent/null: the rule) and "hidden_act" ("quick_gelu" or "gelu"; absent/null: from
 *     the family);
 *   - scheduler/scheduler_config.json "prediction_type": a string that fits the config field;
 *   - ldm metadata "wt.unet_heads" / "wt.text_heads": decimal positive integers;
 *   - model_index.json and each config read must be a JSON object (vae/config.json is not read).
 * A present value of the wrong type, out of range or not dividing must fail with an ENG_E_* code
 * and a message; a valid input must open, report exactly those values and the tiny preset's
 * sizes, and load unet.conv_in.weight with the written values. Anything else traps.
 *   ./build-fz/tests/fuzz_wt_model -dict=tests/fuzz/wt_model.dict -max_len=8192 \
 *       CORPUS tests/fuzz/seeds/wt_model */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "wt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* The library is built with recoverable UBSan checks; a report must stop the run. */
const char *__ubsan_default_options(void) {
    return "halt_on_error=1:print_stacktrace=1";
}

#define SEP       0xFF
#define N_FILES   5
#define MAX_PAIRS 8
#define SEED      7u
#define META_CAP  16384 /* header bytes left for the metadata; inputs with more are skipped */

static const char *const config_files[N_FILES] = {
    "model_index.json", "unet/config.json", "text_encoder/config.json",
    "scheduler/scheduler_config.json", "vae/config.json"};

/* Harness state, made once per process (a fuzz target has no context to pass it through). */
static struct {
    char dir[512];                 /* the per-process temporary folder */
    char diffusers[640], ldm[640]; /* the diffusers folder, the rewritten ldm file */
    char *ldm_tail;                /* the tiny ldm header after its '{' (tensor entries) */
    uint8_t *ldm_head;             /* 8-byte length + the header, of a fixed size */
    size_t ldm_head_n;
    eng_alloc *alloc;
    wt_sd_config tiny;
} S;

static void remove_dir(void);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_wt_model: " __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                                       \
        remove_dir();                                                                              \
        __builtin_trap();                                                                          \
    } while (0)

/* ---- setup and cleanup ------------------------------------------------------------------------ */
static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            char sub[1024];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d != NULL) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* At exit and before an oracle trap. A sanitizer report ends the process through libFuzzer's
 * death callback (which saves the input) and leaves the folder: the next start sweeps it. */
static void remove_dir(void) {
    if (S.dir[0] != '\0') rm_tree(S.dir);
    S.dir[0] = '\0';
}

static void cleanup(void) {
    remove_dir();
    free(S.ldm_tail);
    free(S.ldm_head);
    eng_alloc_destroy(S.alloc);
}

static int write_file(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    int ok = fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len)) != NULL && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL) *n = (size_t)len;
    fclose(f);
    return buf;
}

/* The tiny ldm file rewritten with a header of a fixed, larger size (its tensor entries, then
 * room for metadata, padded with spaces), so that each input only rewrites the header in place
 * and the 3 MB of data stay as they are. Keeps the entries after the header's '{'. */
static void make_ldm(const char *src, const char *dst) {
    size_t n = 0;
    uint8_t *file = read_file(src, &n);
    uint64_t hlen = 0;
    if (file == NULL || n < 8) FAIL("cannot read %s", src);
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    if (hlen < 2 || hlen > n - 8 || file[8] != '{') FAIL("%s: unexpected header", src);
    S.ldm_tail = malloc((size_t)hlen);
    if (S.ldm_tail == NULL) FAIL("out of memory");
    memcpy(S.ldm_tail, file + 9, (size_t)hlen - 1);
    S.ldm_tail[hlen - 1] = '\0';
    const size_t head = ((size_t)hlen + META_CAP + 7) / 8 * 8;
    S.ldm_head_n = 8 + head;
    S.ldm_head = malloc(S.ldm_head_n);
    if (S.ldm_head == NULL) FAIL("out of memory");
    for (int i = 0; i < 8; i++)
        S.ldm_head[i] = (uint8_t)((uint64_t)head >> (8 * i));
    memset(S.ldm_head + 8, ' ', head);
    memcpy(S.ldm_head + 8, file + 8, (size_t)hlen);
    if (write_file(dst, S.ldm_head, S.ldm_head_n, file + 8 + hlen, n - 8 - (size_t)hlen) != 0)
        FAIL("cannot write %s", dst);
    free(file);
}

/* Removes the folders of earlier runs whose process is gone (a crash, or a -fork job killed). */
static void sweep(const char *base) {
    DIR *d = opendir(base);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[1024], *end = NULL;
        if (strncmp(e->d_name, "fuzz_wt_model.", 14) != 0) continue;
        const long pid = strtol(e->d_name + 14, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (maybe not ours) */
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        rm_tree(path);
    }
    if (d != NULL) closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    eng_err err = {0};
    wt_make_params p = {0};
    eng_alloc_params ap;
    const char *tmp = getenv("TMPDIR");
    char plain[700];
    sweep(tmp != NULL ? tmp : "/tmp");
    snprintf(S.dir, sizeof S.dir, "%s/fuzz_wt_model.%ld", tmp != NULL ? tmp : "/tmp",
             (long)getpid());
    rm_tree(S.dir); /* a dead namesake's */
    if (mkdir(S.dir, 0700) != 0) {
        S.dir[0] = '\0';
        FAIL("cannot create a folder in %s", tmp != NULL ? tmp : "/tmp");
    }
    atexit(cleanup);
    snprintf(S.diffusers, sizeof S.diffusers, "%s/diffusers", S.dir);
    snprintf(S.ldm, sizeof S.ldm, "%s/ldm.safetensors", S.dir);
    snprintf(plain, sizeof plain, "%s/plain.safetensors", S.dir);
    if (wt_sd_config_preset(&S.tiny, "tiny", &err) != ENG_OK) FAIL("%s", err.msg);
    p.config = S.tiny;
    p.dtype = ENG_DTYPE_F16;
    p.seed = SEED;
    p.format = WT_FORMAT_DIFFUSERS;
    p.path = S.diffusers;
    if (wt_make_checkpoint(&p, &err) != ENG_OK) FAIL("%s", err.msg);
    /* the ldm tensors without metadata (the input supplies it) */
    p.format = WT_FORMAT_LDM;
    p.path = S.ldm;
    if (wt_make_checkpoint(&p, &err) != ENG_OK) FAIL("%s", err.msg);
    eng_safetensors *f = NULL;
    if (eng_safetensors_open(&f, S.ldm, &err) != ENG_OK) FAIL("%s", err.msg);
    const int64_t n = eng_safetensors_count(f);
    eng_safetensors_entry *e = calloc((size_t)n, sizeof *e);
    if (e == NULL) FAIL("out of memory");
    for (int64_t i = 0; i < n; i++) {
        const eng_safetensors_info *t = eng_safetensors_info_at(f, i);
        e[i] = (eng_safetensors_entry){t->name, NULL, t->dtype, t->ndim, t->shape, t->data};
    }
    if (eng_safetensors_write(plain, e, n, NULL, 0, &err) != ENG_OK) FAIL("%s", err.msg);
    free(e);
    eng_safetensors_close(f);
    make_ldm(plain, S.ldm);
    unlink(plain);
    eng_alloc_params_init(&ap);
    if (eng_alloc_create(&S.alloc, &ap, &err) != ENG_OK) FAIL("%s", err.msg);
    return 0;
}

/* ---- the rules, read independently of wt_model.c ---------------------------------------------- */
typedef struct expect {
    int ok;                   /* the open must succeed */
    const char *why;          /* the first reason it must not */
    int heads[WT_MAX_LEVELS]; /* UNet heads per level (levels >= n_levels: 0) */
    int text_heads;
    int quick_gelu;
    wt_family family;
    char prediction_type[64];
} expect;

static void bad(expect *x, const char *why) {
    if (x->ok || x->why == NULL) x->why = why;
    x->ok = 0;
}

/* A positive integer in [1, 2^24]. */
static int good_count(double v) {
    return v >= 1 && v <= (double)(1 << 24) && v == (double)(int)v;
}

/* An optional count: -1 malformed, 0 absent or null, 1 read into vals (an int fills every slot;
 * a list fills its first slots, the rest stay 0, and *n_list is its length, else 0). */
static int spec_count(const cJSON *v, int allow_list, int vals[WT_MAX_LEVELS], int *n_list) {
    memset(vals, 0, WT_MAX_LEVELS * sizeof *vals);
    *n_list = 0;
    if (v == NULL || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        if (!good_count(v->valuedouble)) return -1;
        for (int i = 0; i < WT_MAX_LEVELS; i++)
            vals[i] = (int)v->valuedouble;
        return 1;
    }
    if (!allow_list || !cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) return -1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (!cJSON_IsNumber(x) || !good_count(x->valuedouble)) return -1;
        if (i < WT_MAX_LEVELS) vals[i] = (int)x->valuedouble;
        i++;
    }
    *n_list = i;
    return 1;
}

static const cJSON *get(const cJSON *o, const char *key) {
    return o != NULL ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* The heads rules of wt.h, then the divisibility every model needs. */
static void finish_expect(expect *x, int unet_given, int text_given) {
    const wt_unet_config *u = &S.tiny.unet;
    for (int i = 0; i < WT_MAX_LEVELS; i++) {
        if (i >= u->n_levels)
            x->heads[i] = 0;
        else if (!unet_given)
            x->heads[i] = x->family == WT_FAMILY_SD1 ? 8
                          : u->block_out[i] >= 64    ? u->block_out[i] / 64
                                                     : 1;
        if (i < u->n_levels && (x->heads[i] < 1 || u->block_out[i] % x->heads[i] != 0))
            bad(x, "UNet heads do not divide a level's channels");
    }
    if (!text_given) x->text_heads = S.tiny.text.hidden >= 64 ? S.tiny.text.hidden / 64 : 1;
    if (x->text_heads < 1 || S.tiny.text.hidden % x->text_heads != 0)
        bad(x, "text heads do not divide the hidden size");
}

static void
expect_diffusers(expect *x, const uint8_t *const sec[N_FILES], const size_t len[N_FILES]) {
    cJSON *j[N_FILES] = {0};
    int vals[WT_MAX_LEVELS], act_known = 0, n_list = 0;
    memset(x, 0, sizeof *x);
    x->ok = 1;
    if (len[0] == 0) bad(x, "no model_index.json");
    /* vae/config.json is written but never read: wt_model_open takes everything about the VAE
     * from its tensors (and SD 1.x/2.x share scaling_factor 0.18215), so its content is free */
    for (int i = 0; i < N_FILES - 1; i++) {
        if (len[i] == 0) continue;
        j[i] = cJSON_ParseWithLength((const char *)sec[i], len[i]);
        if (!cJSON_IsObject(j[i])) bad(x, "a config file is not a JSON object");
    }
    const cJSON *unet = j[1], *text = j[2], *sched = j[3];
    int r = spec_count(get(unet, "num_attention_heads"), 1, x->heads, &n_list);
    if (r == 0) r = spec_count(get(unet, "attention_head_dim"), 1, x->heads, &n_list);
    if (r < 0) bad(x, "unet/config.json: malformed heads");
    if (r > 0 && n_list > 0 && n_list != S.tiny.unet.n_levels)
        bad(x, "unet/config.json: a heads list not one per level");
    const int unet_given = r > 0;
    r = spec_count(get(text, "num_attention_heads"), 0, vals, &n_list);
    if (r < 0) bad(x, "text_encoder/config.json: malformed num_attention_heads");
    x->text_heads = vals[0];
    const cJSON *act = get(text, "hidden_act");
    if (cJSON_IsString(act) &&
        (strcmp(act->valuestring, "quick_gelu") == 0 || strcmp(act->valuestring, "gelu") == 0)) {
        act_known = 1;
        x->quick_gelu = strcmp(act->valuestring, "quick_gelu") == 0;
    } else if (act != NULL && !cJSON_IsNull(act)) {
        bad(x, "text_encoder/config.json: hidden_act not quick_gelu or gelu");
    }
    const cJSON *pt = get(sched, "prediction_type");
    snprintf(x->prediction_type, sizeof x->prediction_type, "epsilon");
    if (cJSON_IsString(pt) && strlen(pt->valuestring) < sizeof S.tiny.prediction_type)
        snprintf(x->prediction_type, sizeof x->prediction_type, "%s", pt->valuestring);
    else if (pt != NULL && !cJSON_IsNull(pt))
        bad(x, "scheduler_config.json: prediction_type not a string that fits");
    /* the tiny UNet's context is 32 wide, so only the activation can make it SD 2.x */
    x->family = act_known && !x->quick_gelu ? WT_FAMILY_SD2 : WT_FAMILY_SD1;
    if (!act_known) x->quick_gelu = x->family == WT_FAMILY_SD1;
    finish_expect(x, unet_given, r > 0);
    for (int i = 0; i < N_FILES; i++)
        cJSON_Delete(j[i]);
}

/* A metadata count: -1 malformed, 0 absent, 1 read. */
static int spec_meta(const char *s, int *out) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (s == NULL) return 0;
    if (n == 0 || n > 8 || strspn(s, "0123456789") != n) return -1;
    *out = atoi(s);
    return *out >= 1 && *out <= (1 << 24) ? 1 : -1;
}

static void expect_ldm(expect *x, const char *unet_heads, const char *text_heads) {
    int h = 0;
    memset(x, 0, sizeof *x);
    x->ok = 1;
    x->family = WT_FAMILY_SD1; /* the CLIP text encoder's names */
    x->quick_gelu = 1;
    snprintf(x->prediction_type, sizeof x->prediction_type, "epsilon");
    const int ru = spec_meta(unet_heads, &h);
    for (int i = 0; i < WT_MAX_LEVELS; i++)
        x->heads[i] = h;
    const int rt = spec_meta(text_heads, &x->text_heads);
    if (ru < 0) bad(x, "metadata wt.unet_heads is not a positive integer");
    if (rt < 0) bad(x, "metadata wt.text_heads is not a positive integer");
    finish_expect(x, ru > 0, rt > 0);
}

/* ---- one open, checked ------------------------------------------------------------------------ */
static void check_open(const char *path, const expect *x) {
    wt_model *m = NULL;
    eng_err err = {0};
    const int rc = wt_model_open(&m, path, &err);
    if (rc != ENG_OK) {
        if (err.code != rc || err.msg[0] == '\0' || m != NULL)
            FAIL("error %d without its message or with a model: \"%s\"", rc, err.msg);
        if (rc != ENG_E_FORMAT && rc != ENG_E_UNSUPPORTED && rc != ENG_E_IO)
            FAIL("unexpected error code %d: %s", rc, err.msg);
        if (x->ok) FAIL("a valid input was refused: %s", err.msg);
        return;
    }
    if (!x->ok) FAIL("an invalid input was accepted (%s)", x->why);
    const wt_sd_config *c = wt_model_config(m);
    const wt_sd_config *t = &S.tiny;
    wt_unet_config u = c->unet;
    memcpy(u.heads, t->unet.heads, sizeof u.heads);
    if (memcmp(&u, &t->unet, sizeof u) != 0 || memcmp(&c->vae, &t->vae, sizeof c->vae) != 0 ||
        c->text.kind != t->text.kind || c->text.hidden != t->text.hidden ||
        c->text.layers != t->text.layers || c->text.intermediate != t->text.intermediate ||
        c->text.vocab != t->text.vocab || c->text.max_positions != t->text.max_positions ||
        c->text.file_layers != t->text.file_layers || c->text.proj_dim != t->text.proj_dim)
        FAIL("a size read off the tensors changed");
    for (int i = 0; i < WT_MAX_LEVELS; i++)
        if (c->unet.heads[i] != x->heads[i])
            FAIL("UNet level %d: %d heads, expected %d", i, c->unet.heads[i], x->heads[i]);
    if (c->text.heads != x->text_heads)
        FAIL("text heads %d, expected %d", c->text.heads, x->text_heads);
    if (c->text.quick_gelu != x->quick_gelu)
        FAIL("quick_gelu %d, expected %d", c->text.quick_gelu, x->quick_gelu);
    if (c->family != x->family) FAIL("family %d, expected %d", c->family, x->family);
    if (memchr(c->prediction_type, '\0', sizeof c->prediction_type) == NULL ||
        strcmp(c->prediction_type, x->prediction_type) != 0)
        FAIL("prediction_type \"%.24s\", expected \"%s\"", c->prediction_type, x->prediction_type);
    /* one tensor, converted f16 -> f32: every 97th value and the last are the ones written */
    eng_tensor w;
    wt_tensor_info info;
    if (wt_model_tensor(m, "unet.conv_in.weight", &info, &err) != ENG_OK ||
        wt_model_load_tensor(m, "unet.conv_in.weight", S.alloc, ENG_DTYPE_F32, 0, &w, &err) !=
            ENG_OK)
        FAIL("unet.conv_in.weight: %s", err.msg);
    const float *v = w.data;
    const int64_t numel = eng_tensor_numel(&w);
    for (int64_t i = 0; i < numel; i += i + 1 < numel && i + 97 >= numel ? numel - 1 - i : 97)
        if (v[i] != eng_f16_to_f32(eng_f32_to_f16(wt_init_value(info.entry, SEED, i))))
            FAIL("unet.conv_in.weight[%lld] = %g", (long long)i, (double)v[i]);
    eng_tensor_free(S.alloc, &w);
    wt_model_close(m);
}

/* ---- the two modes ---------------------------------------------------------------------------- */
static void run_diffusers(const uint8_t *data, size_t size) {
    const uint8_t *sec[N_FILES] = {0};
    size_t len[N_FILES] = {0};
    size_t at = 0;
    for (int i = 0; i < N_FILES && at <= size; i++) {
        const uint8_t *end = size > at ? memchr(data + at, SEP, size - at) : NULL;
        const size_t n = end != NULL ? (size_t)(end - (data + at)) : size - at;
        sec[i] = data + at, len[i] = n;
        at += n + 1;
    }
    for (int i = 0; i < N_FILES; i++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s", S.diffusers, config_files[i]);
        if (len[i] == 0)
            unlink(path);
        else if (write_file(path, sec[i], len[i], NULL, 0) != 0)
            FAIL("cannot write %s", path);
    }
    expect x;
    expect_diffusers(&x, sec, len);
    check_open(S.diffusers, &x);
}

static void check_ldm(const char *head);

static void run_ldm(const uint8_t *data, size_t size) {
    char *kv[2 * MAX_PAIRS] = {0};
    int n = 0;
    size_t at = 0;
    while (n < 2 * MAX_PAIRS && at < size) {
        const uint8_t *end = memchr(data + at, SEP, size - at);
        const size_t k = end != NULL ? (size_t)(end - (data + at)) : size - at;
        kv[n] = malloc(k + 1);
        if (kv[n] == NULL) FAIL("out of memory");
        memcpy(kv[n], data + at, k);
        kv[n][k] = '\0'; /* a NUL inside ends the string here too */
        n++;
        at += k + 1;
    }
    n -= n % 2;
    cJSON *hdr = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    if (hdr == NULL || meta == NULL) FAIL("out of memory");
    for (int i = 0; i < n; i += 2)
        if (cJSON_GetObjectItemCaseSensitive(meta, kv[i]) == NULL)
            cJSON_AddStringToObject(meta, kv[i], kv[i + 1]);
    cJSON_AddItemToObject(hdr, "__metadata__", meta);
    char *head = cJSON_PrintUnformatted(hdr);
    if (head == NULL) FAIL("out of memory");
    /* {"__metadata__":{...}} + , + the tensor entries of the tiny file, padded with spaces */
    const size_t hn = strlen(head) - 1, tn = strlen(S.ldm_tail);
    if (hn + 1 + tn <= S.ldm_head_n - 8) {
        uint8_t *h = S.ldm_head + 8;
        memcpy(h, head, hn);
        h[hn] = ',';
        memcpy(h + hn + 1, S.ldm_tail, tn);
        memset(h + hn + 1 + tn, ' ', S.ldm_head_n - 8 - (hn + 1 + tn));
        const int fd = open(S.ldm, O_WRONLY);
        if (fd < 0 || pwrite(fd, S.ldm_head, S.ldm_head_n, 0) != (ssize_t)S.ldm_head_n ||
            close(fd) != 0)
            FAIL("cannot write %s", S.ldm);
        check_ldm(head);
    }
    cJSON_free(head);
    cJSON_Delete(hdr);
    for (int i = 0; i < 2 * MAX_PAIRS; i++)
        free(kv[i]);
}

/* `head` is the header's metadata part, {"__metadata__":{...}}. The expectation comes from what
 * the safetensors reader makes of it (strings it refuses, e.g. invalid UTF-8, are
 * fuzz_safetensors' business, not this harness's); parsing it alone keeps this cheap. */
static void check_ldm(const char *head) {
    eng_safetensors *f = NULL;
    eng_err err = {0};
    const size_t n = strlen(head);
    uint8_t *buf = malloc(8 + n);
    if (buf == NULL) FAIL("out of memory");
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, head, n);
    if (eng_safetensors_open_memory(&f, buf, 8 + n, &err) == ENG_OK) {
        expect x;
        expect_ldm(&x, eng_safetensors_metadata_get(f, "wt.unet_heads"),
                   eng_safetensors_metadata_get(f, "wt.text_heads"));
        eng_safetensors_close(f);
        check_open(S.ldm, &x);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 4 && memcmp(data, "ldm\xff", 4) == 0)
        run_ldm(data + 4, size - 4);
    else
        run_diffusers(data, size);
    return 0; /* an error is a correct answer; a crash, leak, UB report or trap is the bug */
}
