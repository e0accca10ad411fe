/* eng_alloc.c: the allocator (blocks from a source, sub-allocated first-fit with coalescing),
 * its owner accounting and out-of-memory messages, scratch arenas, and byte-size parsing.
 *
 * The memory handed out may be device memory, so nothing here ever reads or writes it: every
 * piece of bookkeeping (free ranges, the pointer map, owners) lives in host structures, and
 * pointers are computed as integers (base + offset).
 *
 * Layout of the bookkeeping:
 *   blocks[]   each block from the source, in the order taken (first-fit scans them in order),
 *              with its free ranges as a sorted array of (offset, size), coalesced on give;
 *   map        pointer -> (block, rounded size, lifetime, owner), open addressing with linear
 *              probing and backward-shift deletion, so give is O(1) however many allocations live;
 *   owners[]   per-owner byte counts (never removed; those at 0 bytes are not listed). */
#define _POSIX_C_SOURCE 200809L
#include "eng_alloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OWNER_NAME_MAX  48  /* with the NUL, as eng_alloc_owner.name */
#define OOM_OWNERS      5   /* owners listed in an out-of-memory message */
#define SOURCE_ALIGN    256 /* what eng_block_source promises */
#define DEFAULT_BLOCK   ((size_t)64 << 20)
#define DEFAULT_CHUNK   ((size_t)16 << 20)
#define DEFAULT_ALIGN   ((size_t)256)
#define MAP_INITIAL_CAP 1024
#define MERGE_GRANULE   ((size_t)1 << 20) /* merged arena chunks are rounded up to this */

typedef struct range {
    size_t off, size;
} range;

typedef struct block {
    uintptr_t base;  /* as the source returned it */
    size_t size;     /* bytes taken from the source */
    size_t free_sum; /* bytes in free ranges */
    range *free;     /* sorted by offset, never adjacent (coalesced) */
    int64_t nfree, capfree;
    int64_t nallocs; /* live allocations inside; capfree >= nallocs + 1 always */
} block;

typedef struct entry {
    uintptr_t key; /* the pointer handed out; 0 = empty slot */
    block *blk;
    size_t size;    /* rounded to the alignment */
    uint32_t owner; /* index into owners[] */
    uint8_t life;
} entry;

typedef struct owner_rec {
    char name[OWNER_NAME_MAX];
    uint64_t bytes;
} owner_rec;

struct eng_alloc {
    pthread_mutex_t mu;
    eng_device_kind device;
    eng_block_source src;
    int host_source;
    char device_name[32];
    uint64_t budget;
    size_t block_bytes; /* regular block size, a multiple of the alignment */
    size_t chunk_bytes; /* an arena's first chunk, a multiple of the alignment */
    size_t align;
    size_t slack; /* extra bytes a block needs so an aligned start fits: align - source align */

    block **blocks;
    int64_t nblocks, capblocks;
    entry *map;
    size_t map_cap, map_count;
    owner_rec *owners;
    int64_t nowners, capowners;

    eng_alloc_stats st;
    eng_arena *scratch;
};

typedef struct chunk {
    void *ptr;
    size_t size;
} chunk;

struct eng_arena {
    eng_alloc *a;
    char owner[OWNER_NAME_MAX];
    chunk *chunks;
    int64_t nchunks, capchunks;
    int64_t cur;       /* chunk being bumped */
    size_t off;        /* next free byte in chunks[cur] */
    size_t first_size; /* size of the first chunk taken (grows with a merge) */
    uint64_t used, high_water;
    int merge_pending; /* the last round spilled past the first chunk */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static void lock_alloc(const eng_alloc *a) {
    /* The mutex is mutable state even in const queries. */
    pthread_mutex_lock((pthread_mutex_t *)&a->mu);
}

static void unlock_alloc(const eng_alloc *a) {
    pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
}

static int is_pow2(size_t x) {
    return x != 0 && (x & (x - 1)) == 0;
}

/* Rounds up to a multiple of `align` (a power of two); 0 on overflow. */
static size_t round_up(size_t x, size_t align) {
    if (x > SIZE_MAX - (align - 1)) return 0;
    return (x + align - 1) & ~(align - 1);
}

static void copy_name(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src != NULL ? src : "(none)");
}

const char *eng_lifetime_name(eng_lifetime life) {
    switch (life) {
    case ENG_LIFE_WEIGHTS: return "weights";
    case ENG_LIFE_STATE: return "state";
    case ENG_LIFE_SCRATCH: return "scratch";
    default: return "?";
    }
}

/* ---- the default source: host memory ------------------------------------------------------- */

static int host_take(void *user, void **out, size_t bytes, eng_err *err) {
    const size_t align = *(const size_t *)user;
    void *p = NULL;
    if (posix_memalign(&p, align, bytes) != 0 || p == NULL) {
        char b[32];
        return eng_err_set(err, ENG_E_OOM, "host memory: posix_memalign of %s failed",
                           eng_bytes_format(b, sizeof b, bytes));
    }
    *out = p;
    return ENG_OK;
}

static void host_give(void *user, void *block_ptr) {
    (void)user;
    free(block_ptr);
}

/* ---- the pointer map ----------------------------------------------------------------------- */

static size_t map_slot(size_t cap, uintptr_t key) {
    /* Pointers are aligned, so their low bits are zero: a multiplicative hash spreads them. */
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static void map_put_raw(entry *map, size_t cap, const entry *e) {
    size_t i = map_slot(cap, e->key);
    while (map[i].key != 0)
        i = (i + 1) & (cap - 1);
    map[i] = *e;
}

/* Makes room for one more entry (load factor at most 1/2). */
static int map_reserve(eng_alloc *a) {
    entry *nm = NULL;
    size_t ncap;
    if ((a->map_count + 1) * 2 <= a->map_cap) return ENG_OK;
    ncap = a->map_cap * 2;
    nm = (entry *)calloc(ncap, sizeof *nm);
    if (nm == NULL) return ENG_E_OOM;
    for (size_t i = 0; i < a->map_cap; i++) {
        if (a->map[i].key != 0) map_put_raw(nm, ncap, &a->map[i]);
    }
    free(a->map);
    a->map = nm;
    a->map_cap = ncap;
    return ENG_OK;
}

static entry *map_find(const eng_alloc *a, uintptr_t key) {
    size_t i = map_slot(a->map_cap, key);
    while (a->map[i].key != 0) {
        if (a->map[i].key == key) return &a->map[i];
        i = (i + 1) & (a->map_cap - 1);
    }
    return NULL;
}

/* Removes the entry at `e`, shifting later members of its probe run back (no tombstones). */
static void map_remove(eng_alloc *a, entry *e) {
    const size_t mask = a->map_cap - 1;
    size_t hole = (size_t)(e - a->map), i = hole;
    a->map[hole].key = 0;
    for (;;) {
        i = (i + 1) & mask;
        if (a->map[i].key == 0) break;
        const size_t home = map_slot(a->map_cap, a->map[i].key);
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        const int home_after_hole =
            hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            a->map[hole] = a->map[i];
            a->map[i].key = 0;
            hole = i;
        }
    }
    a->map_count--;
}

/* ---- owners -------------------------------------------------------------------------------- */

static int owner_index(eng_alloc *a, const char *name, uint32_t *out) {
    char n[OWNER_NAME_MAX];
    copy_name(n, sizeof n, name);
    for (int64_t i = 0; i < a->nowners; i++) {
        if (strcmp(a->owners[i].name, n) == 0) {
            *out = (uint32_t)i;
            return ENG_OK;
        }
    }
    if (a->nowners == a->capowners) {
        const int64_t ncap = a->capowners ? a->capowners * 2 : 16;
        owner_rec *no = (owner_rec *)realloc(a->owners, (size_t)ncap * sizeof *no);
        if (no == NULL) return ENG_E_OOM;
        a->owners = no;
        a->capowners = ncap;
    }
    memcpy(a->owners[a->nowners].name, n, sizeof n);
    a->owners[a->nowners].bytes = 0;
    *out = (uint32_t)a->nowners++;
    return ENG_OK;
}

static int cmp_owner_desc(const void *x, const void *y) {
    const eng_alloc_owner *p = (const eng_alloc_owner *)x, *q = (const eng_alloc_owner *)y;
    if (p->bytes != q->bytes) return p->bytes < q->bytes ? 1 : -1;
    return strcmp(p->name, q->name);
}

/* Sorted owners with bytes > 0; the caller holds the lock. */
static int owners_locked(const eng_alloc *a, eng_alloc_owner *out, int max) {
    eng_alloc_owner *all = NULL;
    int n = 0;
    if (max <= 0 || a->nowners == 0) return 0;
    all = (eng_alloc_owner *)malloc((size_t)a->nowners * sizeof *all);
    if (all == NULL) return 0;
    for (int64_t i = 0; i < a->nowners; i++) {
        if (a->owners[i].bytes == 0) continue;
        memcpy(all[n].name, a->owners[i].name, sizeof all[n].name);
        all[n].bytes = a->owners[i].bytes;
        n++;
    }
    qsort(all, (size_t)n, sizeof *all, cmp_owner_desc);
    if (n > max) n = max;
    memcpy(out, all, (size_t)n * sizeof *all);
    free(all);
    return n;
}

/* ---- blocks -------------------------------------------------------------------------------- */

static void block_release(eng_alloc *a, int64_t idx) {
    block *b = a->blocks[idx];
    a->src.give(a->src.user, (void *)b->base);
    a->st.reserved -= b->size;
    memmove(&a->blocks[idx], &a->blocks[idx + 1], (size_t)(a->nblocks - idx - 1) * sizeof(block *));
    a->nblocks--;
    free(b->free);
    free(b);
}

/* Gives every empty block back to the source (before declaring out-of-memory). */
static void release_empty_blocks(eng_alloc *a) {
    for (int64_t i = a->nblocks - 1; i >= 0; i--) {
        if (a->blocks[i]->nallocs == 0) block_release(a, i);
    }
}

/* Carves `need` bytes from the free range `ri` of `b`; returns the offset. */
static size_t block_carve(block *b, int64_t ri, size_t need) {
    range *r = &b->free[ri];
    const size_t off = r->off;
    r->off += need;
    r->size -= need;
    if (r->size == 0) {
        memmove(&b->free[ri], &b->free[ri + 1], (size_t)(b->nfree - ri - 1) * sizeof(range));
        b->nfree--;
    }
    b->free_sum -= need;
    b->nallocs++;
    return off;
}

/* Returns [off, off + size) to the free ranges of `b`, merging with its neighbours. Never
 * allocates: capfree >= nallocs + 1 >= nfree + 1 was ensured when the range was taken. */
static void block_uncarve(block *b, size_t off, size_t size) {
    int64_t lo = 0, hi = b->nfree; /* first range with offset > off */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (b->free[mid].off > off) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    const int merge_prev = lo > 0 && b->free[lo - 1].off + b->free[lo - 1].size == off;
    const int merge_next = lo < b->nfree && off + size == b->free[lo].off;
    if (merge_prev && merge_next) {
        b->free[lo - 1].size += size + b->free[lo].size;
        memmove(&b->free[lo], &b->free[lo + 1], (size_t)(b->nfree - lo - 1) * sizeof(range));
        b->nfree--;
    } else if (merge_prev) {
        b->free[lo - 1].size += size;
    } else if (merge_next) {
        b->free[lo].off = off;
        b->free[lo].size += size;
    } else {
        ENG_ASSERT(b->nfree < b->capfree);
        memmove(&b->free[lo + 1], &b->free[lo], (size_t)(b->nfree - lo) * sizeof(range));
        b->free[lo].off = off;
        b->free[lo].size = size;
        b->nfree++;
    }
    b->free_sum += size;
    b->nallocs--;
}

/* So that a later give can never need memory: a block with k allocations has at most k + 1
 * free ranges. */
static int block_reserve_ranges(block *b) {
    if (b->capfree >= b->nallocs + 2) return ENG_OK;
    const int64_t ncap = ENG_MAX(b->capfree * 2, b->nallocs + 2);
    range *nr = (range *)realloc(b->free, (size_t)ncap * sizeof *nr);
    if (nr == NULL) return ENG_E_OOM;
    b->free = nr;
    b->capfree = ncap;
    return ENG_OK;
}

/* First fit over all blocks; sets *blk and *ri, or returns 0. */
static int find_fit(const eng_alloc *a, size_t need, block **blk, int64_t *ri) {
    for (int64_t i = 0; i < a->nblocks; i++) {
        block *b = a->blocks[i];
        if (b->free_sum < need) continue;
        for (int64_t r = 0; r < b->nfree; r++) {
            if (b->free[r].size >= need) {
                *blk = b;
                *ri = r;
                return 1;
            }
        }
    }
    return 0;
}

/* ---- out-of-memory messages ------------------------------------------------------------------ */

static void format_owners(const eng_alloc *a, char *buf, size_t n) {
    eng_alloc_owner top[OOM_OWNERS];
    const int k = owners_locked(a, top, OOM_OWNERS);
    size_t len = 0;
    buf[0] = '\0';
    if (k == 0) {
        snprintf(buf, n, "none");
        return;
    }
    for (int i = 0; i < k && len < n; i++) {
        char b[32];
        const int w = snprintf(buf + len, n - len, "%s%s %s", i ? ", " : "", top[i].name,
                               eng_bytes_format(b, sizeof b, top[i].bytes));
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* "eng_alloc: cuda:0: cannot take 1.50 GiB for "unet" (weights): <why>; 7.20 GiB in use (7.25
 * GiB reserved) of a 8.00 GiB budget; largest owners: unet 5.10 GiB, vae 1.20 GiB" */
static int oom_error(const eng_alloc *a,
                     eng_err *err,
                     int code,
                     size_t bytes,
                     eng_lifetime life,
                     const char *owner,
                     const char *why) {
    char req[32], used[32], res[32], bud[48], owners[320];
    char oname[OWNER_NAME_MAX];
    copy_name(oname, sizeof oname, owner);
    if (a->budget != 0) {
        char b[32];
        snprintf(bud, sizeof bud, "of a %s budget", eng_bytes_format(b, sizeof b, a->budget));
    } else {
        snprintf(bud, sizeof bud, "with no budget");
    }
    format_owners(a, owners, sizeof owners);
    return eng_err_set(err, code,
                       "eng_alloc: %s: cannot take %s for \"%s\" (%s): %s; %s in use (%s "
                       "reserved) %s; largest owners: %s",
                       a->device_name, eng_bytes_format(req, sizeof req, bytes), oname,
                       eng_lifetime_name(life), why,
                       eng_bytes_format(used, sizeof used, a->st.in_use_total),
                       eng_bytes_format(res, sizeof res, a->st.reserved), bud, owners);
}

/* ---- take / give --------------------------------------------------------------------------- */

/* Takes a block of `size` bytes (room for `need` aligned bytes) from the source and appends it.
 * A new block has room for two free ranges, so its first carve never fails. */
static int block_new(eng_alloc *a, size_t size, size_t need, block **out, eng_err *src_err) {
    void *p = NULL;
    block *b = NULL;
    block **nb = NULL;
    int rc = a->src.take(a->src.user, &p, size, src_err);
    if (rc != ENG_OK || p == NULL) return rc != ENG_OK ? rc : ENG_E_OOM;
    const uintptr_t base = (uintptr_t)p;
    const size_t start = (size_t)(((base + a->align - 1) & ~(uintptr_t)(a->align - 1)) - base);
    if (start >= size || ((size - start) & ~(a->align - 1)) < need) {
        a->src.give(a->src.user, p);
        return eng_err_set(src_err, ENG_E_DEVICE,
                           "the block source returned a block at %p that is "
                           "not aligned to %d bytes",
                           p, SOURCE_ALIGN);
    }
    if (a->nblocks == a->capblocks) {
        const int64_t ncap = a->capblocks ? a->capblocks * 2 : 8;
        nb = (block **)realloc(a->blocks, (size_t)ncap * sizeof *nb);
        if (nb == NULL) goto oom;
        a->blocks = nb;
        a->capblocks = ncap;
    }
    b = (block *)calloc(1, sizeof *b);
    if (b == NULL) goto oom;
    b->free = (range *)malloc(4 * sizeof(range));
    if (b->free == NULL) goto oom;
    b->capfree = 4;
    b->base = base;
    b->size = size;
    b->free[0].off = start;
    b->free[0].size = (size - start) & ~(a->align - 1);
    b->nfree = b->free[0].size > 0 ? 1 : 0;
    b->free_sum = b->free[0].size;
    a->blocks[a->nblocks++] = b;
    a->st.reserved += size;
    if (a->st.reserved > a->st.peak_reserved) a->st.peak_reserved = a->st.reserved;
    *out = b;
    return ENG_OK;
oom:
    if (b != NULL) free(b->free);
    free(b);
    a->src.give(a->src.user, p);
    return eng_err_set(src_err, ENG_E_OOM, "no host memory for the allocator's bookkeeping");
}

static int take_locked(
    eng_alloc *a, void **out, size_t bytes, eng_lifetime life, const char *owner, eng_err *err) {
    int rc = ENG_OK;
    block *b = NULL;
    int64_t ri = 0;
    uint32_t oi = 0;
    char why[256];
    eng_err src_err;
    const size_t need = round_up(bytes, a->align);

    if (need == 0 || need > SIZE_MAX - a->slack) {
        return oom_error(a, err, ENG_E_OOM, bytes, life, owner, "the size overflows");
    }
    if (owner_index(a, owner, &oi) != ENG_OK || map_reserve(a) != ENG_OK) {
        return oom_error(a, err, ENG_E_OOM, bytes, life, owner,
                         "no host memory for the allocator's bookkeeping");
    }
    if (!find_fit(a, need, &b, &ri)) {
        /* A new block: a regular one if the request fits, else one of its own. */
        const int regular = need <= a->block_bytes - a->slack;
        const size_t exact = need + a->slack;
        size_t want = regular ? a->block_bytes : exact;
        if (a->budget != 0 && (want > a->budget || a->st.reserved > a->budget - want)) {
            release_empty_blocks(a);
            const uint64_t left = a->st.reserved <= a->budget
                                      ? (a->budget - a->st.reserved) & ~(uint64_t)(a->align - 1)
                                      : 0;
            if (left >= exact) {
                want = (size_t)ENG_MIN((uint64_t)want, left); /* what the budget still allows */
            } else {
                char bb[32];
                snprintf(
                    why, sizeof why, "the budget has %s left",
                    eng_bytes_format(bb, sizeof bb,
                                     a->st.reserved < a->budget ? a->budget - a->st.reserved : 0));
                return oom_error(a, err, ENG_E_OOM, bytes, life, owner, why);
            }
        }
        eng_err_clear(&src_err);
        rc = block_new(a, want, need, &b, &src_err);
        if (rc != ENG_OK && rc != ENG_E_DEVICE) {
            release_empty_blocks(a); /* the device may take a block once the cache is gone */
            eng_err_clear(&src_err);
            rc = block_new(a, want, need, &b, &src_err);
            if (rc != ENG_OK && rc != ENG_E_DEVICE && want > exact) {
                want = exact;
                eng_err_clear(&src_err);
                rc = block_new(a, want, need, &b, &src_err);
            }
        }
        if (rc != ENG_OK) {
            char wb[32];
            snprintf(why, sizeof why, "the device refused %s (%.96s)",
                     eng_bytes_format(wb, sizeof wb, want), src_err.msg);
            return oom_error(a, err, rc == ENG_E_DEVICE ? ENG_E_DEVICE : ENG_E_OOM, bytes, life,
                             owner, why);
        }
        ri = 0;
    }
    if (block_reserve_ranges(b) != ENG_OK) {
        return oom_error(a, err, ENG_E_OOM, bytes, life, owner,
                         "no host memory for the allocator's bookkeeping");
    }
    const size_t off = block_carve(b, ri, need);
    entry e;
    e.key = b->base + off;
    e.blk = b;
    e.size = need;
    e.owner = oi;
    e.life = (uint8_t)life;
    map_put_raw(a->map, a->map_cap, &e);
    a->map_count++;
    a->owners[oi].bytes += need;
    a->st.in_use[life] += need;
    a->st.in_use_total += need;
    if (a->st.in_use_total > a->st.peak_in_use) a->st.peak_in_use = a->st.in_use_total;
    a->st.live_allocations++;
    *out = (void *)e.key;
    return ENG_OK;
}

int eng_alloc_take(
    eng_alloc *a, void **out, size_t bytes, eng_lifetime life, const char *owner, eng_err *err) {
    int rc = ENG_OK;
    char oname[OWNER_NAME_MAX];
    ENG_ASSERT(a != NULL && out != NULL);
    *out = NULL;
    copy_name(oname, sizeof oname, owner);
    if ((unsigned)life >= ENG_LIFE_COUNT) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_alloc_take: \"%s\": lifetime %d is not a lifetime", oname,
                           (int)life);
    }
    if (bytes == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG, "eng_alloc_take: \"%s\" (%s): asked for 0 bytes",
                           oname, eng_lifetime_name(life));
    }
    lock_alloc(a);
    rc = take_locked(a, out, bytes, life, owner, err);
    unlock_alloc(a);
    return rc;
}

static void give_locked(eng_alloc *a, void *p) {
    entry *e = map_find(a, (uintptr_t)p);
    ENG_ASSERT(e != NULL && "eng_alloc_give: pointer not from this allocator (or given twice)");
    block *b = e->blk;
    const size_t size = e->size;
    a->owners[e->owner].bytes -= size;
    a->st.in_use[e->life] -= size;
    a->st.in_use_total -= size;
    a->st.live_allocations--;
    map_remove(a, e);
    block_uncarve(b, (size_t)((uintptr_t)p - b->base), size);
    if (b->nallocs == 0) {
        /* Keep one empty regular block cached; odd-sized ones (dedicated, or cut to the
         * budget) and any second empty block go back to the source. */
        int64_t idx = -1, other_empty = 0;
        for (int64_t i = 0; i < a->nblocks; i++) {
            if (a->blocks[i] == b) {
                idx = i;
            } else if (a->blocks[i]->nallocs == 0) {
                other_empty++;
            }
        }
        ENG_ASSERT(idx >= 0);
        if (b->size != a->block_bytes || other_empty > 0) block_release(a, idx);
    }
}

void eng_alloc_give(eng_alloc *a, void *p) {
    if (p == NULL) return;
    ENG_ASSERT(a != NULL);
    lock_alloc(a);
    give_locked(a, p);
    unlock_alloc(a);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

void eng_alloc_params_init(eng_alloc_params *p) {
    ENG_ASSERT(p != NULL);
    memset(p, 0, sizeof *p);
    p->device = ENG_DEVICE_CPU;
}

int eng_alloc_create(eng_alloc **out, const eng_alloc_params *params, eng_err *err) {
    int rc = ENG_OK;
    eng_alloc *a = NULL;
    int mutex_ok = 0;
    ENG_ASSERT(out != NULL && params != NULL);
    *out = NULL;
    const size_t align = params->alignment ? params->alignment : DEFAULT_ALIGN;
    if (!is_pow2(align)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_alloc_create: alignment %zu is not a power of two", align);
        goto done;
    }
    if ((params->source.take == NULL) != (params->source.give == NULL)) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_alloc_create: the block source needs both take and give");
        goto done;
    }
    const size_t block_bytes =
        round_up(params->block_bytes ? params->block_bytes : DEFAULT_BLOCK, align);
    const size_t chunk_bytes =
        round_up(params->arena_chunk_bytes ? params->arena_chunk_bytes : DEFAULT_CHUNK, align);
    const int host = params->source.take == NULL;
    const size_t slack = (!host && align > SOURCE_ALIGN) ? align - SOURCE_ALIGN : 0;
    if (block_bytes == 0 || chunk_bytes == 0 || block_bytes <= slack) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "eng_alloc_create: block_bytes %zu / arena_chunk_bytes %zu too large or "
                         "too small for alignment %zu",
                         params->block_bytes, params->arena_chunk_bytes, align);
        goto done;
    }
    a = (eng_alloc *)calloc(1, sizeof *a);
    if (a == NULL) goto oom;
    if (pthread_mutex_init(&a->mu, NULL) != 0) goto oom;
    mutex_ok = 1;
    a->device = params->device;
    a->host_source = host;
    a->align = align;
    a->slack = slack;
    a->block_bytes = block_bytes;
    a->chunk_bytes = chunk_bytes;
    a->budget = params->budget_bytes;
    a->st.budget = params->budget_bytes;
    if (host) {
        a->src.device_name = params->source.device_name;
        a->src.user = &a->align; /* host_take reads the alignment from here */
        a->src.take = host_take;
        a->src.give = host_give;
    } else {
        a->src = params->source;
    }
    copy_name(a->device_name, sizeof a->device_name,
              params->source.device_name ? params->source.device_name : "cpu");
    a->map_cap = MAP_INITIAL_CAP;
    a->map = (entry *)calloc(a->map_cap, sizeof *a->map);
    if (a->map == NULL) goto oom;
    if ((rc = eng_arena_create(&a->scratch, a, "scratch", err)) != ENG_OK) goto done;
    *out = a;
    a = NULL;
    goto done;
oom:
    rc = eng_err_set(err, ENG_E_OOM, "eng_alloc_create: out of host memory");
done:
    if (a != NULL) {
        free(a->map);
        if (mutex_ok) pthread_mutex_destroy(&a->mu);
        free(a);
    }
    return rc;
}

void eng_alloc_destroy(eng_alloc *a) {
    if (a == NULL) return;
    eng_arena_destroy(a->scratch);
    a->scratch = NULL;
#ifndef NDEBUG
    if (a->st.live_allocations > 0) {
        char b[32];
        eng_log(NULL, ENG_LOG_WARN,
                "eng_alloc_destroy: %s: %lld allocations (%s) still live; freeing them",
                a->device_name, (long long)a->st.live_allocations,
                eng_bytes_format(b, sizeof b, a->st.in_use_total));
    }
#endif
    while (a->nblocks > 0)
        block_release(a, a->nblocks - 1);
    free(a->blocks);
    free(a->map);
    free(a->owners);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- queries ------------------------------------------------------------------------------- */

void eng_alloc_get_stats(const eng_alloc *a, eng_alloc_stats *out) {
    ENG_ASSERT(a != NULL && out != NULL);
    lock_alloc(a);
    *out = a->st;
    unlock_alloc(a);
}

uint64_t eng_alloc_peak_bytes(const eng_alloc *a) {
    uint64_t v;
    ENG_ASSERT(a != NULL);
    lock_alloc(a);
    v = a->st.peak_reserved;
    unlock_alloc(a);
    return v;
}

int eng_alloc_owners(const eng_alloc *a, eng_alloc_owner *out, int max) {
    int n;
    ENG_ASSERT(a != NULL && (out != NULL || max <= 0));
    lock_alloc(a);
    n = owners_locked(a, out, max);
    unlock_alloc(a);
    return n;
}

eng_device_kind eng_alloc_device(const eng_alloc *a) {
    ENG_ASSERT(a != NULL);
    return a->device;
}

const char *eng_alloc_device_name(const eng_alloc *a) {
    ENG_ASSERT(a != NULL);
    return a->device_name;
}

eng_arena *eng_alloc_scratch(eng_alloc *a) {
    ENG_ASSERT(a != NULL);
    return a->scratch;
}

void eng_alloc_scratch_reset(eng_alloc *a) {
    ENG_ASSERT(a != NULL);
    eng_arena_reset(a->scratch);
}

/* ---- arenas -------------------------------------------------------------------------------- */

int eng_arena_create(eng_arena **out, eng_alloc *a, const char *owner, eng_err *err) {
    eng_arena *ar = NULL;
    ENG_ASSERT(out != NULL && a != NULL);
    *out = NULL;
    ar = (eng_arena *)calloc(1, sizeof *ar);
    if (ar == NULL) {
        return eng_err_set(err, ENG_E_OOM, "eng_arena_create: \"%s\": out of host memory",
                           owner != NULL ? owner : "(none)");
    }
    ar->a = a;
    copy_name(ar->owner, sizeof ar->owner, owner);
    ar->first_size = a->chunk_bytes;
    *out = ar;
    return ENG_OK;
}

static void arena_give_chunks(eng_arena *ar) {
    for (int64_t i = 0; i < ar->nchunks; i++)
        eng_alloc_give(ar->a, ar->chunks[i].ptr);
    ar->nchunks = 0;
    ar->cur = 0;
    ar->off = 0;
}

void eng_arena_destroy(eng_arena *ar) {
    if (ar == NULL) return;
    arena_give_chunks(ar);
    free(ar->chunks);
    free(ar);
}

int eng_arena_take(eng_arena *ar, void **out, size_t bytes, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(ar != NULL && out != NULL);
    eng_alloc *a = ar->a;
    *out = NULL;
    if (bytes == 0) {
        return eng_err_set(err, ENG_E_INVALID_ARG,
                           "eng_arena_take: arena \"%s\": asked for 0 bytes", ar->owner);
    }
    const size_t need = round_up(bytes, a->align);
    if (need == 0) {
        lock_alloc(a);
        rc = oom_error(a, err, ENG_E_OOM, bytes, ENG_LIFE_SCRATCH, ar->owner, "the size overflows");
        unlock_alloc(a);
        return rc;
    }
    if (ar->merge_pending) {
        /* The last round spilled: replace the chunks by one of the high-water size, so the
         * same takes land at the same addresses from now on. */
        const size_t gran = ENG_MAX(a->align, ENG_MIN(MERGE_GRANULE, a->chunk_bytes));
        const size_t merged = round_up((size_t)ar->high_water, gran);
        arena_give_chunks(ar);
        if (merged > ar->first_size) ar->first_size = merged;
        ar->merge_pending = 0;
    }
    if (ar->nchunks > 0 && ar->chunks[ar->cur].size - ar->off >= need) {
        *out = (void *)((uintptr_t)ar->chunks[ar->cur].ptr + ar->off);
        ar->off += need;
    } else {
        int64_t idx = ar->nchunks > 0 ? ar->cur + 1 : 0;
        while (idx < ar->nchunks && ar->chunks[idx].size < need)
            idx++;
        if (idx == ar->nchunks) {
            const size_t size = ENG_MAX(need, ar->nchunks == 0 ? ar->first_size : a->chunk_bytes);
            void *p = NULL;
            if (ar->nchunks == ar->capchunks) {
                const int64_t ncap = ar->capchunks ? ar->capchunks * 2 : 4;
                chunk *nc = (chunk *)realloc(ar->chunks, (size_t)ncap * sizeof *nc);
                if (nc == NULL) {
                    return eng_err_set(err, ENG_E_OOM,
                                       "eng_arena_take: arena \"%s\": out of "
                                       "host memory for its chunk list",
                                       ar->owner);
                }
                ar->chunks = nc;
                ar->capchunks = ncap;
            }
            if ((rc = eng_alloc_take(a, &p, size, ENG_LIFE_SCRATCH, ar->owner, err)) != ENG_OK) {
                return rc;
            }
            ar->chunks[ar->nchunks].ptr = p;
            ar->chunks[ar->nchunks].size = size;
            ar->nchunks++;
        }
        ar->cur = idx;
        ar->off = need;
        *out = ar->chunks[idx].ptr;
    }
    ar->used += need;
    if (ar->used > ar->high_water) ar->high_water = ar->used;
    return ENG_OK;
}

void eng_arena_reset(eng_arena *ar) {
    ENG_ASSERT(ar != NULL);
    if (ar->cur > 0) ar->merge_pending = 1;
    ar->cur = 0;
    ar->off = 0;
    ar->used = 0;
}

eng_arena_pos eng_arena_mark(const eng_arena *ar) {
    eng_arena_pos pos;
    ENG_ASSERT(ar != NULL);
    pos.chunk = ar->cur;
    pos.offset = ar->off;
    pos.used = ar->used;
    return pos;
}

void eng_arena_rewind(eng_arena *ar, eng_arena_pos pos) {
    ENG_ASSERT(ar != NULL && pos.used <= ar->used && pos.chunk <= ar->cur);
    ar->cur = pos.chunk;
    ar->off = pos.offset;
    ar->used = pos.used;
}

uint64_t eng_arena_used(const eng_arena *ar) {
    ENG_ASSERT(ar != NULL);
    return ar->used;
}

uint64_t eng_arena_capacity(const eng_arena *ar) {
    uint64_t c = 0;
    ENG_ASSERT(ar != NULL);
    for (int64_t i = 0; i < ar->nchunks; i++)
        c += ar->chunks[i].size;
    return c;
}

uint64_t eng_arena_high_water(const eng_arena *ar) {
    ENG_ASSERT(ar != NULL);
    return ar->high_water;
}

eng_alloc *eng_arena_alloc(const eng_arena *ar) {
    ENG_ASSERT(ar != NULL);
    return ar->a;
}

/* ---- sizes for people ---------------------------------------------------------------------- */

static int lower(int c) {
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int is_digit(int c) {
    return c >= '0' && c <= '9';
}

int eng_bytes_parse(uint64_t *out, const char *text, eng_err *err) {
    static const char units[] = "kmgt";
    const char *s = text;
    uint64_t ip = 0, frac_num = 0, frac_den = 1, mult = 1;
    int has_frac = 0;
    ENG_ASSERT(out != NULL);
    if (text == NULL) return eng_err_set(err, ENG_E_INVALID_ARG, "eng_bytes_parse: no text");
    while (*s == ' ' || *s == '\t')
        s++;
    if (!is_digit((unsigned char)*s)) goto bad;
    while (is_digit((unsigned char)*s)) {
        const uint64_t d = (uint64_t)(*s - '0');
        if (ip > (UINT64_MAX - d) / 10) goto overflow;
        ip = ip * 10 + d;
        s++;
    }
    if (*s == '.') {
        s++;
        if (!is_digit((unsigned char)*s)) goto bad;
        for (; is_digit((unsigned char)*s); s++) {
            if (frac_den < 1000000000000000000ull) { /* digits past 18 cannot matter */
                frac_num = frac_num * 10 + (uint64_t)(*s - '0');
                frac_den *= 10;
            }
        }
        has_frac = 1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '\0') {
        const char *u = strchr(units, lower((unsigned char)*s));
        if (u != NULL) {
            mult = (uint64_t)1 << (10 * (u - units + 1));
            s++;
            if (lower((unsigned char)*s) == 'i') s++;
            if (lower((unsigned char)*s) == 'b') s++;
        } else if (lower((unsigned char)*s) == 'b') {
            s++;
        } else {
            goto bad;
        }
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '\0') goto bad;
    }
    if (ip > UINT64_MAX / mult) goto overflow;
    uint64_t v = ip * mult;
    if (has_frac && frac_num != 0) {
        if (mult == 1) {
            return eng_err_set(err, ENG_E_INVALID_ARG,
                               "eng_bytes_parse: \"%.64s\" is a fraction of a byte", text);
        }
        const double f = (double)frac_num / (double)frac_den * (double)mult + 0.5;
        const uint64_t fb = (uint64_t)f;
        if (fb > UINT64_MAX - v) goto overflow;
        v += fb;
    }
    *out = v;
    return ENG_OK;
bad:
    return eng_err_set(err, ENG_E_INVALID_ARG,
                       "eng_bytes_parse: \"%.64s\" is not a size (expected a number with an "
                       "optional K/M/G/T suffix: 512M, 8G, 1.5GiB, 1048576)",
                       text);
overflow:
    return eng_err_set(err, ENG_E_INVALID_ARG, "eng_bytes_parse: \"%.64s\" is too large", text);
}

char *eng_bytes_format(char *buf, size_t n, uint64_t bytes) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    ENG_ASSERT(buf != NULL);
    if (n == 0) return buf;
    if (bytes < 1024) {
        snprintf(buf, n, "%llu B", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (v < 9.995) {
        snprintf(buf, n, "%.2f %s", v, units[u]);
    } else if (v < 99.95) {
        snprintf(buf, n, "%.1f %s", v, units[u]);
    } else {
        snprintf(buf, n, "%.0f %s", v, units[u]);
    }
    return buf;
}
