/* quant.h - block-quantised weight matrices (int8 and int4, per-block scales)
 * and the cache file that holds them, so the second start maps instead of
 * quantising.
 *
 * Formats (g3n_matrix dtypes G3N_DTYPE_Q8 / G3N_DTYPE_Q4, declared in matmul.h):
 *   blocks of G3N_QUANT_BLOCK = 32 weights along a row, one f16 scale d each;
 *   Q8: w ≈ d·q, q in [-127, 127], stored as the byte q + 128 (unsigned),
 *   Q4: w ≈ d·(q − 8), q in [0, 15], two per byte.
 * Why 32: the activations are quantised in the same blocks (int8, f32 scale)
 * and a 512-bit VNNI dot (vpdpbusd: unsigned × signed bytes) covers exactly two
 * blocks, so one scale vector per load; it is also what keeps int4 accurate
 * enough (the error grows with the block). Weights are stored unsigned so that
 * the activations can stay signed: the offset (128·Σx or 8·Σx per lane) is a
 * per-activation-row constant folded into the accumulator's start value, so
 * the inner loop is one vpdpbusd + one convert + one fma per 64 weights.
 * Row layout (row_stride bytes, a multiple of 64): the scales (f16 [cols/32],
 * padded to 64 bytes), then the quants (Q8: cols bytes; Q4: cols/2 bytes, in
 * chunks of 64 weights = 32 bytes where byte j holds weight j in its low
 * nibble and weight j + 32 in its high nibble). cols must be a multiple of
 * G3N_QUANT_CHUNK = 64; other matrices stay in their stored dtype.
 *
 * Products go through g3n_matmul as for any dtype (activations are quantised
 * to int8 per block of 32 on the way in: q8 is "W8A8", q4 "W4A8").
 */
#ifndef G3N_QUANT_H
#define G3N_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "matmul.h"
#include "status.h"

#define G3N_QUANT_BLOCK 32
#define G3N_QUANT_CHUNK 64

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

/* ---- kernels (matmul.c dispatches here for Q8/Q4 matrices) ---- */

/* Activations quantised for one weight dtype: per row of x, int8 values, the
 * per-lane start values of the VNNI accumulators (−offset × the sum of each
 * lane's 4 bytes) and the block scales expanded to 16 lanes per chunk. */
typedef struct g3n_quant_activations {
    int64_t rows, cols, chunks;
    int8_t *values;   /* [rows][cols] */
    int32_t *start;   /* [rows][chunks][16] */
    float *scales;    /* [rows][chunks][16]: lanes 0-7 block 2c, lanes 8-15 block 2c+1 */
    float *block_scales; /* [rows][cols/32] */
    size_t capacity;  /* bytes held by the single allocation behind the arrays */
    void *memory;
} g3n_quant_activations;

/* Quantises x [rows][cols] (row stride x_stride) for weights of dtype; grows
 * the buffer only when it is too small (callers keep one per thread). */
int g3n_quant_activations_prepare(g3n_quant_activations *a, const float *x, int64_t rows, size_t x_stride,
                                  int64_t cols, g3n_dtype dtype);
void g3n_quant_activations_free(g3n_quant_activations *a);

/* y[r][j] for x rows [0, rows) (rows <= 4) and weight rows [j0, j1). */
void g3n_quant_dot_portable(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                            float *y, size_t y_stride, int64_t j0, int64_t j1);
void g3n_quant_dot_avx2(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w, float *y,
                        size_t y_stride, int64_t j0, int64_t j1);
void g3n_quant_dot_avx512(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                          float *y, size_t y_stride, int64_t j0, int64_t j1);

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
} g3n_quant_request;

typedef struct g3n_quant_cache g3n_quant_cache;

typedef struct g3n_quant_cache_info {
    int built;          /* 1: quantised now; 0: mapped an existing file */
    int persisted;      /* 1: the data lives in a file (mapped) */
    uint64_t bytes;     /* size of the data */
    double seconds;     /* time to build or map */
} g3n_quant_cache_info;

/* path: the cache file (NULL: memory only). key: describes the source. */
int g3n_quant_cache_open(g3n_quant_cache **out, const char *path, const char *key, g3n_quant_request *requests,
                         int count, g3n_quant_cache_info *info, g3n_error *err);
void g3n_quant_cache_close(g3n_quant_cache *cache); /* accepts NULL */

/* A key for a checkpoint folder: the names, sizes and modification times of
 * its *.safetensors files and config.json. Writes into key (size bytes). */
int g3n_quant_checkpoint_key(const char *folder, char *key, size_t size, g3n_error *err);

#endif
