/* test_eng_alloc.c: the allocator (eng.alloc.*): lifetimes, reuse and coalescing, alignment,
 * dedicated blocks, the budget and its out-of-memory message, peaks, owners, arenas, a seeded
 * random stress against a shadow list, byte sizes, and a fake block source. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign for the fake block source */
#include "eng_alloc.h"
#include "eng_test.h"

#include <pthread.h>
#include <stdint.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static eng_alloc *make_alloc(size_t block, size_t chunk, uint64_t budget, size_t align) {
    eng_alloc_params p;
    eng_alloc *a = NULL;
    eng_err err;
    eng_alloc_params_init(&p);
    p.block_bytes = block;
    p.arena_chunk_bytes = chunk;
    p.budget_bytes = budget;
    p.alignment = align;
    if (eng_alloc_create(&a, &p, &err) != ENG_OK) {
        fprintf(stderr, "eng_alloc_create: %s\n", err.msg);
        return NULL;
    }
    return a;
}

static eng_alloc_stats stats(const eng_alloc *a) {
    eng_alloc_stats st;
    eng_alloc_get_stats(a, &st);
    return st;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- a fake block source: counts calls, hands out 256-aligned blocks that are deliberately
 * not aligned to more, and fails on request. It records blocks so tests can check that every
 * pointer lies inside one. */
#define FAKE_MAX 256
typedef struct fake_source {
    int takes, gives, fails;
    size_t fail_above; /* refuse blocks larger than this; 0 = never */
    int fail_all;
    int fail_code;
    void *raw[FAKE_MAX];
    uintptr_t base[FAKE_MAX];
    size_t size[FAKE_MAX];
    int live[FAKE_MAX];
} fake_source;

static int fake_take(void *user, void **out, size_t bytes, eng_err *err) {
    fake_source *f = (fake_source *)user;
    f->takes++;
    if (f->fail_all || (f->fail_above != 0 && bytes > f->fail_above)) {
        f->fails++;
        return eng_err_set(err, f->fail_code, "fake: out of fake memory for %zu bytes", bytes);
    }
    for (int i = 0; i < FAKE_MAX; i++) {
        if (f->live[i]) continue;
        void *raw = NULL;
        /* 4096-aligned + 256: aligned to 256 exactly, as a device might. */
        if (posix_memalign(&raw, 4096, bytes + 4096) != 0) return ENG_E_OOM;
        f->raw[i] = raw;
        f->base[i] = (uintptr_t)raw + 256;
        f->size[i] = bytes;
        f->live[i] = 1;
        *out = (void *)f->base[i];
        return ENG_OK;
    }
    return eng_err_set(err, ENG_E_OOM, "fake: too many blocks");
}

static void fake_give(void *user, void *block) {
    fake_source *f = (fake_source *)user;
    f->gives++;
    for (int i = 0; i < FAKE_MAX; i++) {
        if (f->live[i] && f->base[i] == (uintptr_t)block) {
            free(f->raw[i]);
            f->live[i] = 0;
            return;
        }
    }
    fprintf(stderr, "fake_give: %p is not a fake block\n", block);
    abort();
}

/* 1 if [p, p + n) lies inside one live fake block. */
static int fake_contains(const fake_source *f, const void *p, size_t n) {
    const uintptr_t x = (uintptr_t)p;
    for (int i = 0; i < FAKE_MAX; i++) {
        if (f->live[i] && x >= f->base[i] && x + n <= f->base[i] + f->size[i]) return 1;
    }
    return 0;
}

static int fake_live_blocks(const fake_source *f) {
    int n = 0;
    for (int i = 0; i < FAKE_MAX; i++)
        n += f->live[i];
    return n;
}

static eng_alloc *make_fake_alloc(fake_source *f, size_t block, uint64_t budget, size_t align) {
    eng_alloc_params p;
    eng_alloc *a = NULL;
    eng_err err;
    eng_alloc_params_init(&p);
    p.source.device_name = "fake:0";
    p.source.user = f;
    p.source.take = fake_take;
    p.source.give = fake_give;
    p.block_bytes = block;
    p.arena_chunk_bytes = 64 * KiB;
    p.budget_bytes = budget;
    p.alignment = align;
    if (eng_alloc_create(&a, &p, &err) != ENG_OK) {
        fprintf(stderr, "eng_alloc_create: %s\n", err.msg);
        return NULL;
    }
    return a;
}

/* ---- cases --------------------------------------------------------------------------------- */

static int test_lifetimes(void) {
    eng_err err;
    void *w = NULL, *s = NULL, *x = NULL;
    eng_arena *ar = NULL;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK(strcmp(eng_lifetime_name(ENG_LIFE_WEIGHTS), "weights") == 0);
    CHECK(strcmp(eng_lifetime_name(ENG_LIFE_STATE), "state") == 0);
    CHECK(strcmp(eng_lifetime_name(ENG_LIFE_SCRATCH), "scratch") == 0);
    CHECK_OK(eng_alloc_take(a, &w, 1000, ENG_LIFE_WEIGHTS, "unet", &err), &err);
    CHECK_OK(eng_alloc_take(a, &s, 3000, ENG_LIFE_STATE, "nerf.grid", &err), &err);
    CHECK_OK(eng_arena_create(&ar, a, "sampler", &err), &err);
    CHECK_OK(eng_arena_take(ar, &x, 100, &err), &err);
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 1024); /* rounded to the 256-byte alignment */
    CHECK_EQ_I64(st.in_use[ENG_LIFE_STATE], 3072);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_SCRATCH], 64 * KiB); /* the whole arena chunk */
    CHECK_EQ_I64(st.in_use_total, 1024 + 3072 + 64 * KiB);
    CHECK_EQ_I64(st.live_allocations, 3);
    CHECK_EQ_I64(st.reserved, 1 * MiB);
    CHECK_EQ_I64(eng_arena_used(ar), 256);
    eng_alloc_give(a, w);
    st = stats(a);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 0);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_STATE], 3072);
    eng_arena_destroy(ar);
    eng_alloc_give(a, s);
    eng_alloc_give(a, NULL); /* a no-op */
    st = stats(a);
    CHECK_EQ_I64(st.in_use_total, 0);
    CHECK_EQ_I64(st.live_allocations, 0);
    CHECK(eng_alloc_device(a) == ENG_DEVICE_CPU);
    CHECK(strcmp(eng_alloc_device_name(a), "cpu") == 0);
    eng_alloc_destroy(a);
    eng_alloc_destroy(NULL);
    return 0;
}

static int test_reuse_coalesce(void) {
    eng_err err;
    void *pa, *pb, *pc, *pd, *pe;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &pa, 4096, ENG_LIFE_WEIGHTS, "a", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pb, 4096, ENG_LIFE_WEIGHTS, "b", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pc, 4096, ENG_LIFE_WEIGHTS, "c", &err), &err);
    CHECK((char *)pb == (char *)pa + 4096); /* first fit packs them */
    CHECK((char *)pc == (char *)pb + 4096);
    eng_alloc_give(a, pb);
    CHECK_OK(eng_alloc_take(a, &pd, 2048, ENG_LIFE_STATE, "d", &err), &err);
    CHECK(pd == pb); /* fits in B's hole */
    CHECK_OK(eng_alloc_take(a, &pe, 2048, ENG_LIFE_STATE, "e", &err), &err);
    CHECK((char *)pe == (char *)pb + 2048); /* the rest of the hole */
    eng_alloc_give(a, pa);
    eng_alloc_give(a, pd);
    eng_alloc_give(a, pe);
    eng_alloc_give(a, pc);
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.in_use_total, 0);
    CHECK_EQ_I64(st.live_allocations, 0);
    CHECK_EQ_I64(st.reserved, 1 * MiB); /* one empty block stays cached */
    /* Coalesced: the whole block is one range again. */
    void *whole;
    CHECK_OK(eng_alloc_take(a, &whole, 1 * MiB, ENG_LIFE_WEIGHTS, "whole", &err), &err);
    CHECK(whole == pa);
    CHECK_EQ_I64(stats(a).reserved, 1 * MiB);
    eng_alloc_give(a, whole);
    eng_alloc_destroy(a);
    return 0;
}

static int test_alignment(void) {
    eng_err err;
    uint64_t rng = eng_test_seed();
    const size_t aligns[3] = {256, 4096, 64};
    for (int k = 0; k < 3; k++) {
        void *ptrs[200];
        eng_alloc *a = make_alloc(256 * KiB, 16 * KiB, 0, aligns[k]);
        CHECK(a != NULL);
        for (int i = 0; i < 200; i++) {
            const size_t n = 1 + (size_t)(splitmix(&rng) % 20000);
            CHECK_OK(eng_alloc_take(a, &ptrs[i], n, ENG_LIFE_STATE, "t", &err), &err);
            CHECK_EQ_I64((uintptr_t)ptrs[i] % aligns[k], 0);
        }
        eng_arena *ar = eng_alloc_scratch(a);
        for (int i = 0; i < 50; i++) {
            void *x;
            CHECK_OK(eng_arena_take(ar, &x, 1 + (size_t)(splitmix(&rng) % 5000), &err), &err);
            CHECK_EQ_I64((uintptr_t)x % aligns[k], 0);
        }
        for (int i = 0; i < 200; i++)
            eng_alloc_give(a, ptrs[i]);
        eng_alloc_destroy(a);
    }
    /* A source that only promises 256 bytes, with a 4096-byte alignment asked for. */
    fake_source f;
    memset(&f, 0, sizeof f);
    eng_alloc *a = make_fake_alloc(&f, 64 * KiB, 0, 4096);
    CHECK(a != NULL);
    void *p[40];
    for (int i = 0; i < 40; i++) {
        const size_t n = i == 39 ? 64 * KiB : 1 + (size_t)(splitmix(&rng) % 9000);
        CHECK_OK(eng_alloc_take(a, &p[i], n, ENG_LIFE_WEIGHTS, "t", &err), &err);
        CHECK_EQ_I64((uintptr_t)p[i] % 4096, 0);
        CHECK(fake_contains(&f, p[i], n));
    }
    for (int i = 0; i < 40; i++)
        eng_alloc_give(a, p[i]);
    eng_alloc_destroy(a);
    CHECK_EQ_I64(f.takes, f.gives);
    return 0;
}

static int test_dedicated_block(void) {
    eng_err err;
    void *small, *big, *small2;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &small, 1000, ENG_LIFE_WEIGHTS, "s", &err), &err);
    CHECK_EQ_I64(stats(a).reserved, 1 * MiB);
    CHECK_OK(eng_alloc_take(a, &big, 3 * MiB + 100, ENG_LIFE_WEIGHTS, "big", &err), &err);
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.reserved, 1 * MiB + 3 * MiB + 256); /* a block of its own, exact size */
    CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 1024 + 3 * MiB + 256);
    /* The regular block still serves small requests. */
    CHECK_OK(eng_alloc_take(a, &small2, 1000, ENG_LIFE_WEIGHTS, "s", &err), &err);
    CHECK((char *)small2 == (char *)small + 1024);
    eng_alloc_give(a, big);
    CHECK_EQ_I64(stats(a).reserved, 1 * MiB); /* the dedicated block went straight back */
    CHECK_EQ_I64(stats(a).peak_reserved, 4 * MiB + 256);
    eng_alloc_give(a, small);
    eng_alloc_give(a, small2);
    eng_alloc_destroy(a);
    return 0;
}

static int test_budget_exceeded(void) {
    eng_err err;
    void *u, *v, *g, *t = NULL;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 4 * MiB, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &u, 2 * MiB, ENG_LIFE_WEIGHTS, "unet", &err), &err);
    CHECK_OK(eng_alloc_take(a, &v, 1 * MiB, ENG_LIFE_WEIGHTS, "vae", &err), &err);
    CHECK_OK(eng_alloc_take(a, &g, 512 * KiB, ENG_LIFE_STATE, "nerf.grid", &err), &err);
    eng_alloc_stats before = stats(a);
    CHECK_EQ_I64(before.reserved, 4 * MiB);
    CHECK_EQ_I64(before.budget, 4 * MiB);
    int rc = eng_alloc_take(a, &t, 1536 * KiB, ENG_LIFE_WEIGHTS, "text_encoder", &err);
    CHECK_EQ_I64(rc, ENG_E_OOM);
    CHECK_EQ_I64(err.code, ENG_E_OOM);
    CHECK(t == NULL);
    fprintf(stderr, "message: %s\n", err.msg);
    CHECK_CONTAINS(err.msg, "eng_alloc: cpu: cannot take 1.50 MiB for \"text_encoder\" (weights)");
    CHECK_CONTAINS(err.msg, "3.50 MiB in use (4.00 MiB reserved) of a 4.00 MiB budget");
    CHECK_CONTAINS(err.msg, "largest owners: unet 2.00 MiB, vae 1.00 MiB, nerf.grid 512 KiB");
    CHECK(strlen(err.msg) < ENG_ERR_MSG_MAX - 1);
    eng_alloc_stats after = stats(a);
    CHECK_EQ_I64(after.in_use_total, before.in_use_total);
    CHECK_EQ_I64(after.reserved, before.reserved);
    CHECK_EQ_I64(after.live_allocations, 3);
    /* The rest of the grid's block still serves a request that fits it. */
    void *fit;
    CHECK_OK(eng_alloc_take(a, &fit, 512 * KiB, ENG_LIFE_WEIGHTS, "text_encoder", &err), &err);
    eng_alloc_give(a, fit);
    /* Once the unet is gone the request fits. */
    eng_alloc_give(a, u);
    CHECK_OK(eng_alloc_take(a, &t, 1536 * KiB, ENG_LIFE_WEIGHTS, "text_encoder", &err), &err);
    eng_alloc_give(a, t);
    eng_alloc_give(a, v);
    eng_alloc_give(a, g);
    eng_alloc_destroy(a);

    /* A new block is cut to what the budget has left. */
    a = make_alloc(1 * MiB, 64 * KiB, 1536 * KiB, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &u, 1 * MiB, ENG_LIFE_WEIGHTS, "a", &err), &err);
    CHECK_OK(eng_alloc_take(a, &v, 300 * KiB, ENG_LIFE_WEIGHTS, "b", &err), &err);
    CHECK_EQ_I64(stats(a).reserved, 1536 * KiB);
    rc = eng_alloc_take(a, &g, 300 * KiB, ENG_LIFE_WEIGHTS, "c", &err);
    CHECK_EQ_I64(rc, ENG_E_OOM);
    CHECK_CONTAINS(err.msg, "\"c\"");
    CHECK_CONTAINS(err.msg, "the budget has 0 B left");
    eng_alloc_give(a, u);
    eng_alloc_give(a, v);
    eng_alloc_destroy(a);

    /* Cached empty blocks are given back before the budget says no. */
    a = make_alloc(1 * MiB, 64 * KiB, 2 * MiB, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &u, 1 * MiB, ENG_LIFE_WEIGHTS, "a", &err), &err);
    CHECK_OK(eng_alloc_take(a, &v, 1 * MiB, ENG_LIFE_WEIGHTS, "b", &err), &err);
    eng_alloc_give(a, u);
    eng_alloc_give(a, v);
    CHECK_EQ_I64(stats(a).reserved, 1 * MiB); /* one cached, one given back */
    CHECK_OK(eng_alloc_take(a, &t, 2 * MiB, ENG_LIFE_WEIGHTS, "big", &err), &err);
    CHECK_EQ_I64(stats(a).reserved, 2 * MiB);
    eng_alloc_give(a, t);
    eng_alloc_destroy(a);
    return 0;
}

static int test_peak(void) {
    eng_err err;
    void *p1, *p2, *p3;
    eng_alloc *a = make_alloc(4 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_EQ_I64(stats(a).peak_in_use, 0);
    CHECK_OK(eng_alloc_take(a, &p1, 1 * MiB, ENG_LIFE_WEIGHTS, "x", &err), &err);
    CHECK_OK(eng_alloc_take(a, &p2, 2 * MiB, ENG_LIFE_STATE, "y", &err), &err);
    eng_alloc_give(a, p2);
    CHECK_OK(eng_alloc_take(a, &p3, 512 * KiB, ENG_LIFE_STATE, "z", &err), &err);
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.in_use_total, 1536 * KiB);
    CHECK_EQ_I64(st.peak_in_use, 3 * MiB);
    CHECK_EQ_I64(st.peak_reserved, 4 * MiB);
    CHECK_EQ_I64(eng_alloc_peak_bytes(a), st.peak_reserved);
    /* A dedicated block raises the reserved peak, which stays after it is given back. */
    void *big;
    CHECK_OK(eng_alloc_take(a, &big, 5 * MiB, ENG_LIFE_WEIGHTS, "big", &err), &err);
    eng_alloc_give(a, big);
    CHECK_EQ_I64(eng_alloc_peak_bytes(a), 9 * MiB);
    CHECK_EQ_I64(stats(a).reserved, 4 * MiB);
    CHECK_EQ_I64(stats(a).peak_in_use, 1536 * KiB + 5 * MiB);
    eng_alloc_give(a, p1);
    eng_alloc_give(a, p3);
    eng_alloc_destroy(a);
    return 0;
}

static int test_owners_sorted(void) {
    eng_err err;
    void *pa, *pb, *pc, *pb2, *pl;
    eng_alloc_owner o[8];
    const char *longname = "a.very.long.owner.name.that.goes.on.and.on.past.forty.seven.chars";
    eng_alloc *a = make_alloc(4 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_EQ_I64(eng_alloc_owners(a, o, 8), 0);
    CHECK_OK(eng_alloc_take(a, &pa, 100 * KiB, ENG_LIFE_WEIGHTS, "a", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pb, 200 * KiB, ENG_LIFE_WEIGHTS, "b", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pc, 200 * KiB, ENG_LIFE_STATE, "c", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pb2, 100 * KiB, ENG_LIFE_STATE, "b", &err), &err);
    CHECK_OK(eng_alloc_take(a, &pl, 50 * KiB, ENG_LIFE_STATE, longname, &err), &err);
    int n = eng_alloc_owners(a, o, 8);
    CHECK_EQ_I64(n, 4);
    CHECK(strcmp(o[0].name, "b") == 0);
    CHECK_EQ_I64(o[0].bytes, 300 * KiB);
    CHECK(strcmp(o[1].name, "c") == 0);
    CHECK_EQ_I64(o[1].bytes, 200 * KiB);
    CHECK(strcmp(o[2].name, "a") == 0);
    CHECK_EQ_I64(strlen(o[3].name), 47);
    CHECK(strncmp(o[3].name, longname, 47) == 0);
    CHECK_EQ_I64(eng_alloc_owners(a, o, 2), 2);
    CHECK(strcmp(o[1].name, "c") == 0);
    eng_alloc_give(a, pb);
    eng_alloc_give(a, pb2);
    n = eng_alloc_owners(a, o, 8);
    CHECK_EQ_I64(n, 3); /* b holds nothing now */
    CHECK(strcmp(o[0].name, "c") == 0);
    eng_alloc_give(a, pa);
    eng_alloc_give(a, pc);
    eng_alloc_give(a, pl);
    CHECK_EQ_I64(eng_alloc_owners(a, o, 8), 0);
    eng_alloc_destroy(a);
    return 0;
}

static int test_arena_same_addresses(void) {
    eng_err err;
    uint64_t rng = eng_test_seed();
    size_t sizes[30];
    void *first[30], *again[30];
    eng_arena *ar = NULL;
    eng_alloc *a = make_alloc(1 * MiB, 256 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_arena_create(&ar, a, "sampler", &err), &err);
    CHECK(eng_arena_alloc(ar) == a);
    CHECK_EQ_I64(eng_arena_capacity(ar), 0); /* chunks come on first use */
    uint64_t total = 0;
    for (int i = 0; i < 30; i++) {
        sizes[i] = 1 + (size_t)(splitmix(&rng) % 6000);
        total += (sizes[i] + 255) / 256 * 256;
        CHECK_OK(eng_arena_take(ar, &first[i], sizes[i], &err), &err);
    }
    CHECK_EQ_I64(eng_arena_used(ar), total);
    CHECK_EQ_I64(eng_arena_capacity(ar), 256 * KiB);
    for (int round = 0; round < 3; round++) {
        eng_arena_reset(ar);
        CHECK_EQ_I64(eng_arena_used(ar), 0);
        for (int i = 0; i < 30; i++) {
            CHECK_OK(eng_arena_take(ar, &again[i], sizes[i], &err), &err);
            CHECK(again[i] == first[i]);
        }
    }
    CHECK_EQ_I64(eng_arena_high_water(ar), total);
    CHECK_EQ_I64(stats(a).in_use[ENG_LIFE_SCRATCH], 256 * KiB);
    eng_alloc_owner o[4];
    CHECK_EQ_I64(eng_alloc_owners(a, o, 4), 1);
    CHECK(strcmp(o[0].name, "sampler") == 0);
    eng_arena_destroy(ar);
    eng_arena_destroy(NULL);
    eng_alloc_destroy(a);
    return 0;
}

static int test_arena_merge(void) {
    eng_err err;
    void *r1[6], *r2[6], *r3[6];
    eng_arena *ar = NULL;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_arena_create(&ar, a, "unet.step", &err), &err);
    /* Round 1: six 30 KiB takes; a 64 KiB chunk holds two, so three chunks. */
    for (int i = 0; i < 6; i++)
        CHECK_OK(eng_arena_take(ar, &r1[i], 30 * KiB, &err), &err);
    CHECK_EQ_I64(eng_arena_capacity(ar), 3 * 64 * KiB);
    CHECK_EQ_I64(eng_arena_used(ar), 180 * KiB);
    CHECK_EQ_I64(stats(a).live_allocations, 3);
    eng_arena_reset(ar);
    /* Round 2: merged into one chunk of the high water (180 KiB rounded up to 64 KiB). */
    for (int i = 0; i < 6; i++)
        CHECK_OK(eng_arena_take(ar, &r2[i], 30 * KiB, &err), &err);
    CHECK_EQ_I64(eng_arena_capacity(ar), 192 * KiB);
    CHECK_EQ_I64(stats(a).live_allocations, 1);
    CHECK_EQ_I64(stats(a).in_use[ENG_LIFE_SCRATCH], 192 * KiB);
    for (int i = 1; i < 6; i++)
        CHECK((char *)r2[i] == (char *)r2[0] + (size_t)i * 30 * KiB);
    eng_arena_reset(ar);
    /* Round 3: settled. */
    for (int i = 0; i < 6; i++) {
        CHECK_OK(eng_arena_take(ar, &r3[i], 30 * KiB, &err), &err);
        CHECK(r3[i] == r2[i]);
    }
    CHECK_EQ_I64(eng_arena_capacity(ar), 192 * KiB);
    CHECK_EQ_I64(eng_arena_high_water(ar), 180 * KiB);
    /* One take larger than any chunk gets a chunk of its own, then merges too. */
    void *huge, *h2;
    CHECK_OK(eng_arena_take(ar, &huge, 300 * KiB, &err), &err);
    CHECK_EQ_I64(eng_arena_capacity(ar), 192 * KiB + 300 * KiB);
    eng_arena_reset(ar);
    CHECK_OK(eng_arena_take(ar, &h2, 480 * KiB, &err), &err);
    CHECK_EQ_I64(eng_arena_capacity(ar), 512 * KiB);
    eng_arena_destroy(ar);
    CHECK_EQ_I64(stats(a).in_use_total, 0);
    eng_alloc_destroy(a);
    return 0;
}

static int test_arena_destroy(void) {
    eng_err err;
    eng_arena *ar = NULL;
    void *x;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_arena_create(&ar, a, "frame", &err), &err);
    for (int i = 0; i < 10; i++)
        CHECK_OK(eng_arena_take(ar, &x, 40 * KiB, &err), &err);
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_SCRATCH], 10 * 64 * KiB);
    CHECK_EQ_I64(st.live_allocations, 10);
    eng_arena_destroy(ar);
    st = stats(a);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_SCRATCH], 0);
    CHECK_EQ_I64(st.in_use_total, 0);
    CHECK_EQ_I64(st.live_allocations, 0);
    CHECK_EQ_I64(st.reserved, 1 * MiB); /* the one cached empty block */
    eng_alloc_destroy(a);
    return 0;
}

/* An op's workspace: mark, take, rewind; the next take reuses the bytes, also across chunks. */
static int test_arena_mark_rewind(void) {
    eng_err err;
    eng_arena *ar = NULL;
    void *keep, *w1, *w2, *big, *after;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_arena_create(&ar, a, "step", &err), &err);
    CHECK_OK(eng_arena_take(ar, &keep, 1000, &err), &err);
    const uint64_t used = eng_arena_used(ar);
    eng_arena_pos pos = eng_arena_mark(ar);
    CHECK_OK(eng_arena_take(ar, &w1, 4000, &err), &err);
    eng_arena_rewind(ar, pos);
    CHECK_EQ_I64(eng_arena_used(ar), used);
    CHECK_OK(eng_arena_take(ar, &w2, 4000, &err), &err);
    CHECK(w1 == w2); /* the workspace's bytes were given back */
    eng_arena_rewind(ar, pos);
    /* A workspace that spills into a new chunk: rewinding returns to the first chunk. */
    CHECK_OK(eng_arena_take(ar, &big, 200 * KiB, &err), &err);
    CHECK(eng_arena_capacity(ar) > 64 * KiB);
    eng_arena_rewind(ar, pos);
    CHECK_OK(eng_arena_take(ar, &after, 4000, &err), &err);
    CHECK(after == w1);
    CHECK_EQ_I64(eng_arena_used(ar), used + 4096); /* rounded to the 256-byte alignment */
    eng_arena_destroy(ar);
    eng_alloc_destroy(a);
    return 0;
}

typedef struct shadow {
    uintptr_t p;
    size_t n; /* rounded */
    int life;
    uint8_t tag;
} shadow;

static int test_stress(void) {
    /* Grows to MAXLIVE live allocations (so the pointer map grows past its first size), then
     * shrinks; sizes are mostly small, some up to 64 KiB, one in 50 needs a dedicated block. */
    enum { OPS = 8000, MAXLIVE = 2000 };
    eng_err err;
    uint64_t rng = eng_test_seed() ^ 0x5eed;
    shadow *live = (shadow *)calloc(MAXLIVE, sizeof *live);
    int nlive = 0;
    fake_source f;
    memset(&f, 0, sizeof f);
    eng_alloc *a = make_fake_alloc(&f, 256 * KiB, 0, 256);
    CHECK(a != NULL && live != NULL);
    for (int op = 0; op < OPS; op++) {
        const uint64_t take_pct = op < OPS / 2 ? 80 : 30;
        const int do_take = nlive == 0 || (nlive < MAXLIVE && splitmix(&rng) % 100 < take_pct);
        if (do_take) {
            const uint64_t r = splitmix(&rng);
            size_t n = 1 + (size_t)(r % ((r >> 40) % 4 == 3 ? 64 * KiB : 4 * KiB));
            if (r % 50 == 0) n = 256 * KiB + (size_t)(r % 100000); /* dedicated */
            const int life = (int)((r >> 32) % 2);
            void *p = NULL;
            CHECK_OK(eng_alloc_take(a, &p, n, (eng_lifetime)life, life ? "s" : "w", &err), &err);
            const uintptr_t x = (uintptr_t)p;
            const size_t rn = (n + 255) & ~(size_t)255;
            CHECK(x % 256 == 0);
            CHECK(fake_contains(&f, p, rn));
            for (int i = 0; i < nlive; i++) {
                if (x < live[i].p + live[i].n && live[i].p < x + rn) {
                    fprintf(stderr, "op %d: [%p, +%zu) overlaps [%p, +%zu)\n", op, p, rn,
                            (void *)live[i].p, live[i].n);
                    return 1;
                }
            }
            live[nlive].p = x;
            live[nlive].n = rn;
            live[nlive].life = life;
            live[nlive].tag = (uint8_t)op;
            memset(p, live[nlive].tag, 1); /* host memory: tag the ends */
            memset((char *)p + n - 1, live[nlive].tag, 1);
            nlive++;
        } else {
            const int i = (int)(splitmix(&rng) % (uint64_t)nlive);
            CHECK(*(uint8_t *)live[i].p == live[i].tag);
            eng_alloc_give(a, (void *)live[i].p);
            live[i] = live[--nlive];
        }
        if (op % 97 == 0 || op == OPS - 1) {
            uint64_t sum[2] = {0, 0};
            for (int i = 0; i < nlive; i++)
                sum[live[i].life] += live[i].n;
            eng_alloc_stats st = stats(a);
            CHECK_EQ_I64(st.in_use[0], sum[0]);
            CHECK_EQ_I64(st.in_use[1], sum[1]);
            CHECK_EQ_I64(st.in_use_total, sum[0] + sum[1]);
            CHECK_EQ_I64(st.live_allocations, nlive);
            CHECK(st.reserved >= st.in_use_total);
            CHECK(st.peak_in_use >= st.in_use_total);
            CHECK_EQ_I64(f.takes - f.gives, fake_live_blocks(&f));
        }
        if (op == OPS / 2) CHECK(nlive > 1500); /* the map had to grow */
    }
    while (nlive > 0) {
        eng_alloc_give(a, (void *)live[nlive - 1].p);
        nlive--;
    }
    eng_alloc_stats st = stats(a);
    CHECK_EQ_I64(st.in_use_total, 0);
    CHECK_EQ_I64(st.live_allocations, 0);
    CHECK_EQ_I64(st.reserved, 256 * KiB); /* one cached regular block */
    CHECK_EQ_I64(fake_live_blocks(&f), 1);
    eng_alloc_destroy(a);
    CHECK_EQ_I64(fake_live_blocks(&f), 0);
    CHECK_EQ_I64(f.takes, f.gives);
    free(live);
    return 0;
}

static int test_bytes_parse(void) {
    static const struct {
        const char *text;
        uint64_t want;
    } good[] = {
        {"1048576", 1048576},
        {"512M", 512ull << 20},
        {"8G", 8ull << 30},
        {"8g", 8ull << 30},
        {"1.5GiB", 3ull << 29},
        {"1.5 GB", 3ull << 29},
        {"2K", 2048},
        {"2KiB", 2048},
        {"3T", 3ull << 40},
        {"100B", 100},
        {"0", 0},
        {" 64M ", 64ull << 20},
        {"0.25M", 256ull << 10},
        {"1.0", 1},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *const bad[] = {"",
                                      "abc",
                                      "-1",
                                      "-1G",
                                      "12X",
                                      "1.5",
                                      "1..5G",
                                      "G",
                                      "1G2",
                                      "1.G",
                                      "18446744073709551616",
                                      "16777216T",
                                      "5 M B"};
    eng_err err;
    for (int i = 0; i < ENG_TEST_N(good); i++) {
        uint64_t v = 0;
        CHECK_OK(eng_bytes_parse(&v, good[i].text, &err), &err);
        if (v != good[i].want) {
            fprintf(stderr, "\"%s\" -> %llu, expected %llu\n", good[i].text, (unsigned long long)v,
                    (unsigned long long)good[i].want);
            return 1;
        }
    }
    for (int i = 0; i < ENG_TEST_N(bad); i++) {
        uint64_t v = 77;
        const int rc = eng_bytes_parse(&v, bad[i], &err);
        if (rc != ENG_E_INVALID_ARG) {
            fprintf(stderr, "\"%s\" was accepted as %llu\n", bad[i], (unsigned long long)v);
            return 1;
        }
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        CHECK_CONTAINS(err.msg, quoted);
        CHECK_EQ_I64(v, 77); /* untouched on error */
    }
    CHECK_CONTAINS((eng_bytes_parse(&(uint64_t){0}, "16777216T", &err), err.msg), "too large");
    CHECK_CONTAINS((eng_bytes_parse(&(uint64_t){0}, "1.5", &err), err.msg), "fraction of a byte");
    return 0;
}

static int test_bytes_format(void) {
    static const struct {
        uint64_t bytes;
        const char *want;
    } cases[] = {
        {0, "0 B"},
        {512, "512 B"},
        {1023, "1023 B"},
        {1024, "1.00 KiB"},
        {1536, "1.50 KiB"},
        {12ull << 20, "12.0 MiB"},
        {600ull << 20, "600 MiB"},
        {3ull << 29, "1.50 GiB"},
        {8ull << 30, "8.00 GiB"},
        {(uint64_t)(7.2 * (1 << 30)), "7.20 GiB"},
        {5ull << 40, "5.00 TiB"},
        {UINT64_MAX, "16.0 EiB"},
    };
    char buf[32];
    for (int i = 0; i < ENG_TEST_N(cases); i++) {
        eng_bytes_format(buf, sizeof buf, cases[i].bytes);
        if (strcmp(buf, cases[i].want) != 0) {
            fprintf(stderr, "%llu -> \"%s\", expected \"%s\"\n", (unsigned long long)cases[i].bytes,
                    buf, cases[i].want);
            return 1;
        }
    }
    char small[6];
    CHECK(eng_bytes_format(small, sizeof small, 3ull << 29) == small);
    CHECK(strcmp(small, "1.50 ") == 0); /* truncated, still terminated */
    /* Round trip through the parser. */
    uint64_t v;
    eng_err err;
    CHECK_OK(eng_bytes_parse(&v, eng_bytes_format(buf, sizeof buf, 3ull << 29), &err), &err);
    CHECK_EQ_I64(v, 3ull << 29);
    return 0;
}

static int test_fake_source(void) {
    eng_err err;
    fake_source f;
    void *p[6];
    memset(&f, 0, sizeof f);
    eng_alloc *a = make_fake_alloc(&f, 128 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK(strcmp(eng_alloc_device_name(a), "fake:0") == 0);
    CHECK_EQ_I64(f.takes, 0); /* nothing taken up front */
    for (int i = 0; i < 6; i++) {
        CHECK_OK(eng_alloc_take(a, &p[i], 50 * KiB, ENG_LIFE_STATE, "grid", &err), &err);
        CHECK(fake_contains(&f, p[i], 50 * KiB));
    }
    CHECK_EQ_I64(f.takes, 3); /* two 50 KiB pieces per 128 KiB block */
    CHECK_EQ_I64(stats(a).reserved, 3 * 128 * KiB);
    void *ds;
    eng_arena *sc = eng_alloc_scratch(a);
    CHECK_OK(eng_arena_take(sc, &ds, 10, &err), &err);
    CHECK(fake_contains(&f, ds, 10));
    CHECK_EQ_I64(f.takes, 4); /* the scratch chunk needed a fourth block */
    for (int i = 0; i < 6; i++)
        eng_alloc_give(a, p[i]);
    /* Two blocks became empty with the chunk's block still in use: one cached, one back. */
    CHECK_EQ_I64(f.gives, 2);
    CHECK_EQ_I64(fake_live_blocks(&f), 2);
    eng_alloc_destroy(a);
    CHECK_EQ_I64(f.gives, f.takes);
    CHECK_EQ_I64(fake_live_blocks(&f), 0);
    return 0;
}

static int test_source_failure(void) {
    eng_err err;
    fake_source f;
    void *p = NULL, *q = NULL;
    memset(&f, 0, sizeof f);
    f.fail_code = ENG_E_OOM;
    eng_alloc *a = make_fake_alloc(&f, 1 * MiB, 0, 256);
    CHECK(a != NULL);
    CHECK_OK(eng_alloc_take(a, &q, 100 * KiB, ENG_LIFE_WEIGHTS, "clip", &err), &err);
    f.fail_all = 1;
    /* Needs a dedicated block, which the device refuses. */
    int rc = eng_alloc_take(a, &p, 3 * MiB, ENG_LIFE_WEIGHTS, "unet", &err);
    CHECK_EQ_I64(rc, ENG_E_OOM);
    CHECK(p == NULL);
    fprintf(stderr, "message: %s\n", err.msg);
    CHECK_CONTAINS(err.msg, "fake:0: cannot take 3.00 MiB for \"unet\" (weights)");
    CHECK_CONTAINS(err.msg, "the device refused 3.00 MiB");
    CHECK_CONTAINS(err.msg, "fake: out of fake memory");
    CHECK_CONTAINS(err.msg, "100 KiB in use (1.00 MiB reserved) with no budget");
    CHECK_CONTAINS(err.msg, "largest owners: clip 100 KiB");
    CHECK_EQ_I64(stats(a).live_allocations, 1);
    /* A device error stays a device error. */
    f.fail_code = ENG_E_DEVICE;
    rc = eng_alloc_take(a, &p, 3 * MiB, ENG_LIFE_STATE, "nerf", &err);
    CHECK_EQ_I64(rc, ENG_E_DEVICE);
    CHECK_CONTAINS(err.msg, "\"nerf\" (state)");
    /* Refusing full blocks but granting small ones: the allocator falls back to exact size. */
    f.fail_all = 0;
    f.fail_code = ENG_E_OOM;
    f.fail_above = 512 * KiB;
    eng_alloc_give(a, q); /* the block becomes the one cached empty block */
    CHECK_OK(eng_alloc_take(a, &q, 1 * MiB, ENG_LIFE_WEIGHTS, "clip", &err), &err);
    void *big;
    const int takes = f.takes;
    CHECK_OK(eng_alloc_take(a, &big, 300 * KiB, ENG_LIFE_WEIGHTS, "vae", &err), &err);
    CHECK_EQ_I64(f.takes - takes, 3); /* 1 MiB refused, refused again, then 300 KiB */
    CHECK_EQ_I64(stats(a).reserved, 1 * MiB + 300 * KiB);
    eng_alloc_give(a, big);
    eng_alloc_give(a, q);
    eng_alloc_destroy(a);
    CHECK_EQ_I64(f.takes - f.fails, f.gives);
    return 0;
}

static int test_scratch_default(void) {
    eng_err err;
    void *x1, *y1, *x2, *y2;
    eng_alloc *a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    eng_arena *sc = eng_alloc_scratch(a);
    CHECK(sc != NULL);
    CHECK(eng_arena_alloc(sc) == a);
    CHECK_OK(eng_arena_take(sc, &x1, 1000, &err), &err);
    CHECK_OK(eng_arena_take(sc, &y1, 5000, &err), &err);
    eng_alloc_owner o[2];
    CHECK_EQ_I64(eng_alloc_owners(a, o, 2), 1);
    CHECK(strcmp(o[0].name, "scratch") == 0);
    eng_alloc_scratch_reset(a);
    CHECK_EQ_I64(eng_arena_used(sc), 0);
    CHECK_OK(eng_arena_take(sc, &x2, 1000, &err), &err);
    CHECK_OK(eng_arena_take(sc, &y2, 5000, &err), &err);
    CHECK(x1 == x2 && y1 == y2);
    eng_alloc_destroy(a); /* gives the default arena's chunk back too */
    return 0;
}

static int test_bad_args(void) {
    eng_err err;
    eng_alloc_params p;
    eng_alloc *a = NULL;
    void *x = (void *)&err;
    eng_alloc_params_init(&p);
    p.alignment = 384;
    CHECK_EQ_I64(eng_alloc_create(&a, &p, &err), ENG_E_INVALID_ARG);
    CHECK(a == NULL);
    CHECK_CONTAINS(err.msg, "alignment 384");
    eng_alloc_params_init(&p);
    p.source.take = fake_take;
    CHECK_EQ_I64(eng_alloc_create(&a, &p, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "take and give");
    a = make_alloc(1 * MiB, 64 * KiB, 0, 256);
    CHECK(a != NULL);
    CHECK_EQ_I64(eng_alloc_take(a, &x, 0, ENG_LIFE_WEIGHTS, "vae", &err), ENG_E_INVALID_ARG);
    CHECK(x == NULL);
    CHECK_CONTAINS(err.msg, "\"vae\"");
    CHECK_CONTAINS(err.msg, "0 bytes");
    CHECK_EQ_I64(eng_alloc_take(a, &x, 16, ENG_LIFE_COUNT, "vae", &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "lifetime");
    CHECK_EQ_I64(eng_alloc_take(a, &x, SIZE_MAX - 10, ENG_LIFE_WEIGHTS, "huge", &err), ENG_E_OOM);
    CHECK_CONTAINS(err.msg, "\"huge\"");
    CHECK_CONTAINS(err.msg, "overflows");
    CHECK_EQ_I64(eng_arena_take(eng_alloc_scratch(a), &x, 0, &err), ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "arena \"scratch\"");
    CHECK_EQ_I64(eng_arena_take(eng_alloc_scratch(a), &x, SIZE_MAX, &err), ENG_E_OOM);
    CHECK_CONTAINS(err.msg, "\"scratch\" (scratch)");
    CHECK_EQ_I64(stats(a).live_allocations, 0);
    /* Passing NULL for err is allowed. */
    CHECK_EQ_I64(eng_alloc_take(a, &x, 0, ENG_LIFE_WEIGHTS, "vae", NULL), ENG_E_INVALID_ARG);
    eng_alloc_destroy(a);
    return 0;
}

/* Four threads take and give at once, each filling its memory with its own byte and checking
 * it before giving it back: overlapping ranges between threads would show. */
typedef struct thread_arg {
    eng_alloc *a;
    uint64_t seed;
    int id;
    int failures;
} thread_arg;

static void *thread_main(void *p) {
    enum { OPS = 3000, KEEP = 64 };
    thread_arg *t = (thread_arg *)p;
    void *ptr[KEEP] = {0};
    size_t len[KEEP] = {0};
    eng_arena *ar = NULL;
    eng_err err;
    char owner[16];
    snprintf(owner, sizeof owner, "thread%d", t->id);
    if (eng_arena_create(&ar, t->a, owner, &err) != ENG_OK) {
        t->failures++;
        return NULL;
    }
    for (int op = 0; op < OPS; op++) {
        const uint64_t r = splitmix(&t->seed);
        const int i = (int)(r % KEEP);
        if (ptr[i] != NULL) {
            for (size_t k = 0; k < len[i]; k += 97) {
                if (((unsigned char *)ptr[i])[k] != (unsigned char)t->id) t->failures++;
            }
            eng_alloc_give(t->a, ptr[i]);
            ptr[i] = NULL;
        } else {
            len[i] = 1 + (size_t)((r >> 16) % (48 * KiB));
            if (eng_alloc_take(t->a, &ptr[i], len[i], ENG_LIFE_STATE, owner, &err) != ENG_OK) {
                t->failures++;
                ptr[i] = NULL;
                continue;
            }
            memset(ptr[i], t->id, len[i]);
        }
        if (op % 50 == 0) {
            void *x;
            eng_alloc_stats st;
            eng_arena_reset(ar);
            if (eng_arena_take(ar, &x, 1 + (size_t)(r % 20000), &err) != ENG_OK) t->failures++;
            eng_alloc_get_stats(t->a, &st);
            if (st.in_use_total > st.reserved) t->failures++;
        }
    }
    for (int i = 0; i < KEEP; i++)
        eng_alloc_give(t->a, ptr[i]);
    eng_arena_destroy(ar);
    return NULL;
}

static int test_threads(void) {
    enum { NT = 4 };
    pthread_t th[NT];
    thread_arg args[NT];
    eng_alloc *a = make_alloc(512 * KiB, 32 * KiB, 0, 256);
    CHECK(a != NULL);
    for (int i = 0; i < NT; i++) {
        args[i].a = a;
        args[i].seed = eng_test_seed() + (uint64_t)i * 7919;
        args[i].id = i + 1;
        args[i].failures = 0;
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++)
        CHECK_EQ_I64(args[i].failures, 0);
    eng_alloc_stats st;
    eng_alloc_get_stats(a, &st);
    CHECK_EQ_I64(st.in_use_total, 0);
    CHECK_EQ_I64(st.live_allocations, 0);
    CHECK(st.peak_in_use > 0);
    eng_alloc_destroy(a);
    return 0;
}

static const eng_test_case cases[] = {
    {"lifetimes", test_lifetimes},
    {"reuse_coalesce", test_reuse_coalesce},
    {"alignment", test_alignment},
    {"dedicated_block", test_dedicated_block},
    {"budget_exceeded", test_budget_exceeded},
    {"peak", test_peak},
    {"owners_sorted", test_owners_sorted},
    {"arena_same_addresses", test_arena_same_addresses},
    {"arena_merge", test_arena_merge},
    {"arena_destroy", test_arena_destroy},
    {"arena_mark_rewind", test_arena_mark_rewind},
    {"stress", test_stress},
    {"bytes_parse", test_bytes_parse},
    {"bytes_format", test_bytes_format},
    {"fake_source", test_fake_source},
    {"source_failure", test_source_failure},
    {"scratch_default", test_scratch_default},
    {"bad_args", test_bad_args},
    {"threads", test_threads},
};

int main(int argc, char **argv) {
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
