/* quant.h - block-quantised weight matrices (int8 and int4, per-block scales)
 * and the cache file that holds them, so the second start maps instead of
 * quantising.
 *
 * Formats (g3n_matrix dtypes G3N_DTYPE_Q8 / G3N_DTYPE_Q4 of tensor.h, rows of
 * the format table in matrix_format.h):
 *   blocks of G3N_QUANT_BLOCK = 32 weights along a row, one f16 scale d each;
 *   Q8: w ≈ d·q, q in [-127, 127], stored as the byte q + 128 (unsigned),
 *   Q4: w ≈ d·(q − 8), q in [0, 15].
 * Why 32: the activations are quantised in the same blocks (int8, f32 scale),
 * and it is what keeps int4 accurate enough (the error grows with the block).
 * Weights are stored unsigned so that the activations can stay signed for
 * VNNI's vpdpbusd (unsigned × signed bytes); the offset (128·Σx or 8·Σx per
 * block) is a per-activation constant that starts the integer accumulator.
 *
 * Row layout (row_stride bytes, a multiple of 64): the scales (f16 [cols/32],
 * padded to 64 bytes), then the quants in groups of G3N_QUANT_GROUP = 16
 * blocks (512 weights; the last group of a row may hold fewer blocks, g).
 * Inside a group the blocks are interleaved so that one 64-byte vector holds
 * 4 consecutive weights of each of its 16 blocks: vector k, bytes 4l..4l+3 =
 * weights 4k..4k+3 of block l (Q8: 8 vectors of 64 bytes). Q4: 4 vectors of
 * 64 bytes; byte 4l+i of vector k holds weight 4k+i of block l in its low
 * nibble and weight 16+4k+i in its high nibble. A group of g < 16 blocks
 * uses vectors of 4g bytes. Why: 8 vpdpbusd accumulate a whole group into
 * one int32 lane per block, so the float work (convert, scale, fma) and the
 * f16 scale conversion happen once per 512 weights instead of once per 64,
 * and q4 unpacks 128 weights per load with one and/shift/and: the decode
 * kernel becomes memory-bound again. Rows with a short last group end with
 * 64 spare bytes so kernels may read whole vectors (the extra bytes meet
 * zero activations). cols must be a multiple of G3N_QUANT_CHUNK = 64; other
 * matrices stay in their stored dtype.
 *
 * Products go through g3n_matmul as for any dtype (activations are quantised
 * to int8 per block of 32 on the way in: q8 is "W8A8", q4 "W4A8").
 */
#ifndef G3N_QUANT_H
#define G3N_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "file_map.h"
#include "matrix.h"
#include "status.h"

#define G3N_QUANT_BLOCK 32
#define G3N_QUANT_CHUNK 64
#define G3N_QUANT_GROUP_BLOCKS 16
#define G3N_QUANT_GROUP 512 /* weights per group: G3N_QUANT_GROUP_BLOCKS blocks */

/* What `--weights` selects. */
typedef enum g3n_weight_format {
    G3N_WEIGHTS_EXACT = 0, /* "f32": stored dtype, f32 compute (the fixtures' exact path) */
    G3N_WEIGHTS_BF16,      /* "bf16": stored dtype plus the sparse-MLP layout (transposed down_proj) */
    G3N_WEIGHTS_Q8,        /* "q8" */
    G3N_WEIGHTS_Q4         /* "q4" */
} g3n_weight_format;

/* "f32"|"exact", "bf16", "q8", "q4". */
int g3n_weight_format_parse(const char *text, g3n_weight_format *out, g3n_error *err);
const char *g3n_weight_format_name(g3n_weight_format format);
/* The matrix dtype a format quantises to (G3N_DTYPE_Q8/Q4), or -1 for none. */
int g3n_weight_format_dtype(g3n_weight_format format);

/* 1 if a matrix with this many columns can be stored as dtype (Q8/Q4). */
int g3n_quant_supported(g3n_dtype dtype, int64_t cols);
/* Bytes of one quantised row (a multiple of 64). */
size_t g3n_quant_row_bytes(g3n_dtype dtype, int64_t cols);
/* Quantises every row of src (F32/BF16/F16) into dst (rows × row_bytes bytes,
 * 64-byte aligned) and returns the matrix view of it. Parallel over rows. */
g3n_matrix g3n_quantize_matrix(const g3n_matrix *src, g3n_dtype dtype, void *dst);
/* Writes src transposed ([cols, rows], same dtype F32/BF16/F16) into dst and
 * returns the view (for column access: the sparse MLP's down_proj). */
g3n_matrix g3n_transpose_matrix(const g3n_matrix *src, void *dst);

/* ---- kernels (listed in the format table, matrix_format.c; matmul.c drives them) ---- */

/* Activations quantised for the Q8/Q4 kernels, group-major so that a
 * kernel reaches row r of a group at a constant offset (r·512 bytes): per
 * group and row of x, the int8 values in the weights' group layout (padded
 * to 512 bytes: vector k at byte 64k, lanes of missing blocks zero), the 16
 * int32 start values of the accumulators (−offset × the block's sum: 128 for
 * Q8, 8 for Q4) and the 16 block scales (zero for missing blocks). */
typedef struct g3n_quant_activations {
    int64_t rows, cols, groups;
    int8_t *values;        /* [groups][rows][512] */
    int32_t *start;        /* [groups][rows][16] */
    float *block_scales;   /* [groups][rows][16] */
    size_t capacity;       /* bytes held by the single allocation behind the arrays */
    void *memory;
} g3n_quant_activations;

/* Quantises x [rows][cols] (row stride x_stride) for weights of dtype; grows
 * the buffer only when it is too small (callers keep one per thread). */
int g3n_quant_activations_prepare(g3n_quant_activations *a, const float *x, int64_t rows, size_t x_stride,
                                  int64_t cols, g3n_dtype dtype);
void g3n_quant_activations_free(g3n_quant_activations *a);

/* y[r][j] for x rows [row0, row0 + rows) (rows <= 8) and weight rows [j0, j1). */
void g3n_quant_dot_portable(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                            float *y, size_t y_stride, int64_t j0, int64_t j1);
void g3n_quant_dot_avx2(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w, float *y,
                        size_t y_stride, int64_t j0, int64_t j1);
void g3n_quant_dot_avx512(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                          float *y, size_t y_stride, int64_t j0, int64_t j1);

/* Σ_i coefs[i] · W[rows[i]] over the columns of group `group` (512 columns,
 * fewer in a short last group), written to out[0 .. columns of the group).
 * AVX-512 and AVX2; the sparse MLP's down_proj (matmul.c falls back to
 * g3n_quant_row_slice_to_f32 on the portable path). */
void g3n_quant_combine_group_avx512(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count,
                                    int64_t group, float *out);
void g3n_quant_combine_group_avx2(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count,
                                  int64_t group, float *out);

/* ---- the group layout (shared by the kernels) ---- */
static inline int64_t g3n_quant_groups(int64_t cols)
{
    return (cols / G3N_QUANT_BLOCK + G3N_QUANT_GROUP_BLOCKS - 1) / G3N_QUANT_GROUP_BLOCKS;
}
/* Blocks in group `group` of a row of cols columns (16, or fewer in the last). */
static inline int g3n_quant_group_blocks(int64_t cols, int64_t group)
{
    const int64_t left = cols / G3N_QUANT_BLOCK - group * G3N_QUANT_GROUP_BLOCKS;
    return left < G3N_QUANT_GROUP_BLOCKS ? (int)left : G3N_QUANT_GROUP_BLOCKS;
}
/* Bytes of the scales at the start of a row. */
static inline size_t g3n_quant_scales_bytes(int64_t cols)
{
    return ((size_t)(cols / G3N_QUANT_BLOCK) * 2 + 63) / 64 * 64;
}

/* Bytes of the scales at the start of each row of w (a column-prefix view's
 * rows keep the scales of their stored width). */
static inline size_t g3n_quant_matrix_scales_bytes(const g3n_matrix *w)
{
    return g3n_quant_scales_bytes(w->stored_cols > 0 ? w->stored_cols : w->cols);
}

/* Row `row` of a Q8/Q4 matrix dequantised to f32. */
void g3n_quant_row_to_f32(const g3n_matrix *w, int64_t row, float *out);
/* Dequantises columns [c0, c1) (multiples of 32) of a Q8/Q4 row. */
void g3n_quant_row_slice_to_f32(const g3n_matrix *w, int64_t row, int64_t c0, int64_t c1, float *out);

/* ---- the cache file ----
 * One file holds named matrices of one weight format, each row-aligned to 64
 * bytes, mapped read-only. A header records a key describing the source
 * (checkpoint files, sizes, times, config); a file whose key, format or
 * entries differ is rebuilt. Built into "<path>.tmp.<pid>" and renamed, so a
 * crash never leaves a half-written cache behind. If the folder is not
 * writable the matrices are kept in memory instead (and `persisted` says 0). */
typedef struct g3n_quant_request {
    const char *name;   /* unique name, e.g. the checkpoint tensor name (+ ".T" when transposed) */
    g3n_matrix source;  /* stored weights */
    g3n_dtype dtype;    /* target: G3N_DTYPE_Q8/Q4, or the source dtype with transpose = 1 */
    int transpose;      /* store source transposed (F32/BF16/F16 targets only) */
    g3n_matrix result;  /* out: the view in the cache */
    int release_source; /* 1: source lies in a read-only file mapping (a checkpoint shard): once stored,
                           its pages are dropped from the process (madvise MADV_DONTNEED; a later read
                           faults them back from the file), so building leaves no shard resident */
} g3n_quant_request;

typedef struct g3n_quant_cache g3n_quant_cache;

typedef struct g3n_quant_cache_info {
    int built;          /* 1: quantised now; 0: mapped an existing file */
    int persisted;      /* 1: the data lives in a file (mapped) */
    uint64_t bytes;     /* size of the data */
    double seconds;     /* time to build or map */
    g3n_file_pages pages; /* a file's pages: 2 MiB ones stream faster (file_map.h) */
} g3n_quant_cache_info;

/* path: the cache file (NULL: memory only). key: describes the source. */
int g3n_quant_cache_open(g3n_quant_cache **out, const char *path, const char *key, g3n_quant_request *requests,
                         int count, g3n_quant_cache_info *info, g3n_error *err);
/* Building progress: fraction of the source bytes stored so far (0 at the
 * start, 1 at the end) and the seconds since the build began; called on the
 * opening thread after each matrix, only when the cache is built. */
typedef void (*g3n_quant_progress)(void *user, double fraction, double seconds);
/* g3n_quant_cache_open that reports building progress (progress may be NULL). */
int g3n_quant_cache_open_reporting(g3n_quant_cache **out, const char *path, const char *key,
                                   g3n_quant_request *requests, int count, g3n_quant_cache_info *info,
                                   g3n_quant_progress progress, void *user, g3n_error *err);
void g3n_quant_cache_close(g3n_quant_cache *cache); /* accepts NULL */

/* A key for a checkpoint folder: the names, sizes and modification times of
 * its *.safetensors files and config.json. Writes into key (size bytes). */
int g3n_quant_checkpoint_key(const char *folder, char *key, size_t size, g3n_error *err);

#endif
