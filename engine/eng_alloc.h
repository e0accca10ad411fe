/* eng_alloc.h: the one allocator per device. Three lifetimes: weights, state, scratch.
 *
 *   eng_alloc_params p; eng_alloc_params_init(&p); p.budget_bytes = 8ull << 30;
 *   eng_alloc *a = NULL; eng_err err;
 *   if (eng_alloc_create(&a, &p, &err) != ENG_OK) fprintf(stderr, "%s\n", err.msg);
 *   void *w; eng_alloc_take(a, &w, bytes, ENG_LIFE_WEIGHTS, "unet", &err);   ... eng_alloc_give(a, w);
 *   eng_arena *ar; eng_arena_create(&ar, a, "sampler", &err);
 *   void *x; eng_arena_take(ar, &x, bytes, &err);  ...  eng_arena_reset(ar);  // x is now invalid
 *
 * Memory comes from a block source (host memory by default; a device backend supplies
 * cudaMalloc'd blocks) in large blocks that are sub-allocated first-fit, free neighbours merging
 * on give; requests larger than a block get a block of their own, given back with them. At most
 * one empty block stays cached; the others go back to the source. The allocator never reads or
 * writes the memory it hands out (it may be device memory): its bookkeeping lives on the host.
 * A budget caps the bytes taken from the source: a new block is cut to what the budget has left,
 * and cached blocks are given back before a request is refused. Running out returns ENG_E_OOM
 * with a message naming the request, the amount in use, the budget and the largest owners.
 *
 * Scratch lives in arenas: bump allocation in chunks taken from the allocator; a reset rewinds
 * without giving chunks back, so the same sequence of takes after a reset returns the same
 * addresses (what lets the CUDA backend capture a step as a graph). Destroying an arena gives its
 * chunks back. Each scheduler job owns one arena; the allocator also has a default one.
 *
 * Ownership: the allocator owns all tensor memory; tensors borrow it. `owner` strings are copied.
 * Threads: every function is safe from any thread (one mutex per allocator), except that one arena
 * must not be used from two threads at once. */
#ifndef ENG_ALLOC_H
#define ENG_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "eng_dtype.h"
#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_lifetime {
    ENG_LIFE_WEIGHTS, /* loaded once, freed at unload */
    ENG_LIFE_STATE,   /* long-lived mutable state: NeRF parameters, optimizer moments, grids */
    ENG_LIFE_SCRATCH, /* arena chunks: activations, reset after each step */
    ENG_LIFE_COUNT
} eng_lifetime;

const char *eng_lifetime_name(eng_lifetime life); /* "weights", "state", "scratch" */

/* Where the big blocks come from. A zeroed source means host memory (aligned_alloc). */
typedef struct eng_block_source {
    const char *device_name; /* used in messages: "cpu", "cuda:0"; NULL means "cpu" */
    void *user;              /* passed to take/give */
    /* Takes one block of `bytes` (>= 256-byte aligned). Errors: ENG_E_OOM, ENG_E_DEVICE. */
    int (*take)(void *user, void **out, size_t bytes, eng_err *err);
    void (*give)(void *user, void *block);
} eng_block_source;

typedef struct eng_alloc_params {
    eng_device_kind device;   /* ENG_DEVICE_CPU by default */
    eng_block_source source;  /* zeroed: host memory */
    uint64_t budget_bytes;    /* cap on bytes taken from the source; 0 = none */
    size_t block_bytes;       /* sub-allocated block size; 0 = 64 MiB */
    size_t arena_chunk_bytes; /* an arena's first chunk; 0 = 16 MiB */
    size_t alignment;         /* every pointer handed out; 0 = 256 bytes; a power of two */
} eng_alloc_params;

typedef struct eng_alloc eng_alloc; /* opaque */
typedef struct eng_arena eng_arena; /* opaque */

/* Fills defaults (host memory, no budget). */
void eng_alloc_params_init(eng_alloc_params *p);
/* Creates an allocator; the caller owns *out (free with eng_alloc_destroy). Takes no block yet.
 * Errors: ENG_E_INVALID_ARG (alignment not a power of two, a block too small for it, a source
 * with only one of take/give), ENG_E_OOM. */
int eng_alloc_create(eng_alloc **out, const eng_alloc_params *params, eng_err *err);
/* Gives every block back to its source. Live allocations are reported by the log in debug
 * builds and freed anyway. NULL is a no-op. */
void eng_alloc_destroy(eng_alloc *a);

/* Takes `bytes` (> 0) for `life` (WEIGHTS or STATE; SCRATCH is for arenas), charged to `owner`
 * (e.g. "unet", "nerf.grid"; at most 47 characters are kept). The memory is uninitialised and
 * aligned to params.alignment; the size is rounded up to the alignment and counted so.
 * Errors: ENG_E_INVALID_ARG (bytes == 0, no such lifetime), ENG_E_OOM (budget or source
 * exhausted, or the size overflows: the message names owner, size, lifetime, the bytes in use,
 * the budget and the largest owners), ENG_E_DEVICE (the source reported a device fault). */
int eng_alloc_take(
    eng_alloc *a, void **out, size_t bytes, eng_lifetime life, const char *owner, eng_err *err);
/* Gives back a pointer from eng_alloc_take. NULL is a no-op; any other pointer is a bug. */
void eng_alloc_give(eng_alloc *a, void *p);

/* ---- queries ------------------------------------------------------------------------------ */
typedef struct eng_alloc_stats {
    uint64_t in_use[ENG_LIFE_COUNT]; /* live bytes per lifetime, each take rounded up to the
                                        alignment (arena chunks count whole, as scratch) */
    uint64_t in_use_total;           /* sum of in_use */
    uint64_t peak_in_use;            /* highest in_use_total so far */
    uint64_t reserved;               /* bytes taken from the source (what the device sees) */
    uint64_t peak_reserved;          /* highest reserved so far */
    uint64_t budget;                 /* 0 = none */
    int64_t live_allocations;        /* takes not yet given back (arena chunks included) */
} eng_alloc_stats;

typedef struct eng_alloc_owner {
    char name[48];
    uint64_t bytes;
} eng_alloc_owner;

void eng_alloc_get_stats(const eng_alloc *a, eng_alloc_stats *out);
uint64_t eng_alloc_peak_bytes(const eng_alloc *a); /* == stats.peak_reserved */
/* The owners holding memory now, largest first; writes at most `max`, returns how many. */
int eng_alloc_owners(const eng_alloc *a, eng_alloc_owner *out, int max);
eng_device_kind eng_alloc_device(const eng_alloc *a);
const char *eng_alloc_device_name(const eng_alloc *a);

/* The allocator's default scratch arena (owner "scratch"), created with it. */
eng_arena *eng_alloc_scratch(eng_alloc *a);
void eng_alloc_scratch_reset(eng_alloc *a); /* every pointer from the default arena is invalid */

/* ---- arenas ------------------------------------------------------------------------------- */
/* Creates an empty arena charged to `owner`; chunks are taken on first use.
 * Errors: ENG_E_OOM (only when allocating the arena's bookkeeping fails). */
int eng_arena_create(eng_arena **out, eng_alloc *a, const char *owner, eng_err *err);
/* Gives all chunks back to the allocator. NULL is a no-op. */
void eng_arena_destroy(eng_arena *ar);
/* Bump-allocates `bytes` aligned like the allocator. Chunks are taken from the allocator (as
 * scratch, charged to the arena's owner): the first of arena_chunk_bytes, more as needed.
 * Errors: ENG_E_INVALID_ARG (bytes == 0), ENG_E_OOM as eng_alloc_take. */
int eng_arena_take(eng_arena *ar, void **out, size_t bytes, eng_err *err);
/* Rewinds the arena; chunks stay. If the last round spilled over several chunks, the next take
 * merges them into one chunk of the high-water size, rounded up to min(1 MiB, arena_chunk_bytes)
 * (addresses then settle from the following round on). */
void eng_arena_reset(eng_arena *ar);
/* A position in the arena, to give back temporary memory within a round: an op that needs a
 * workspace marks, takes, enqueues its work and rewinds; the next op on the same stream reuses
 * the bytes (stream order makes that safe on a device). Pointers taken after the mark are invalid
 * once rewound. Rewinding to a mark from before the last reset is a bug. */
typedef struct eng_arena_pos {
    int64_t chunk;
    size_t offset;
    uint64_t used;
} eng_arena_pos;
eng_arena_pos eng_arena_mark(const eng_arena *ar);
void eng_arena_rewind(eng_arena *ar, eng_arena_pos pos);
uint64_t eng_arena_used(const eng_arena *ar);       /* bytes handed out since the last reset */
uint64_t eng_arena_capacity(const eng_arena *ar);   /* bytes of chunks held */
uint64_t eng_arena_high_water(const eng_arena *ar); /* largest `used` seen */
eng_alloc *eng_arena_alloc(const eng_arena *ar);

/* ---- sizes for people ---------------------------------------------------------------------- */
/* Parses "512M", "8G", "1.5GiB", "1048576" (K/M/G/T are powers of 1024).
 * Units in any case, with an optional "i" and "B" ("8g", "2KiB", "64 MB"); a fraction needs a
 * unit and is rounded to the nearest byte.
 * Errors: ENG_E_INVALID_ARG naming the text (garbage, negative, fraction of a byte, overflow). */
int eng_bytes_parse(uint64_t *out, const char *text, eng_err *err);
/* Writes "1.50 GiB", "12.0 MiB", "512 B" (three significant digits, powers of 1024) into buf,
 * truncated to n; returns buf. */
char *eng_bytes_format(char *buf, size_t n, uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* ENG_ALLOC_H */
