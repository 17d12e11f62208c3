/* gemm_packed.h - y = x · Wᵀ with W packed ONCE (at load time) into the
 * AVX-512 micro-kernel's panel layout: the towers' GEMM (vision 1x1/3x3
 * convolutions and attention, audio conformer linears).
 *
 * Why not g3n_matmul: it re-packs a 32-row weight panel on every call (for the
 * audio tower's 96-row chunks that costs about as much as the products) and
 * walks all rows of x once per panel (a 147k-pixel activation streams from
 * memory 16 times). Here the weights are packed once, the rows are cut into
 * blocks of G3N_GEMM_ROW_BLOCK that stay in cache while every panel passes
 * over them, and a per-row-block epilogue (norm, GELU, softmax...) runs while
 * the block is still in cache.
 *
 * Precision (what the products are computed in):
 *   G3N_PRECISION_F32  - exact path: weights kept in their stored precision
 *                        (bf16 weights as bf16 panels widened to f32 in the
 *                        kernel, f32/f16 weights as f32 panels), f32 x, f32
 *                        FMAs: the same numbers as g3n_matmul up to summation
 *                        order.
 *   G3N_PRECISION_BF16 - fast path: weights rounded to bf16 (exact for bf16
 *                        checkpoints), x rounded to bf16 (nearest-even) per row
 *                        block, products with AVX512-BF16 vdpbf16ps into f32
 *                        accumulators: twice the f32 FMA rate.
 *   G3N_PRECISION_INT8 - fastest: weights int8 with one f32 scale per output
 *                        (max-abs / 127), x quantised per row (max-abs / 127,
 *                        stored +128 as u8), AVX512-VNNI vpdpbusd into int32
 *                        over the whole K, then y = sx * sw * (acc - 128 * sum w):
 *                        four times the f32 FMA rate; about 1% error per GEMM.
 * With AVX2 but no AVX-512 the same panels go through AVX2 kernels
 * (gemm_packed_avx2.c): f32 and bf16 panels with f32 FMAs (bf16 compute keeps
 * x in f32 there: AVX2 has no bf16 dot product, so it is the exact product on
 * bf16-rounded weights), int8 with the same exact integer sums (AVX-VNNI
 * vpdpbusd on ymm where the CPU has it, else vpmaddubsw on |x| and sign(w, x)
 * + vpmaddwd): bit for bit the AVX-512 int8 results. Below AVX2 nothing is
 * packed and the call goes through g3n_matmul on the source matrix (f32
 * compute, so a bf16 or int8 request is then simply exact).
 *
 * Ownership: a g3n_packed_matrix owns its panels; it keeps a view of the
 * source matrix (borrowed, used only by the fallback): the source must outlive
 * it. Parallel over OpenMP threads (tiles of rows x panels, dynamic schedule:
 * robust when a core is taken by another process). No allocation per call once
 * the largest shape has been seen (thread-local row buffers for bf16/int8).
 * int8 or bf16 compute with few rows and no epilogue `apply` (the audio tower's chunks): x is
 * quantised / rounded once for the whole call (rows in parallel), then each
 * tile is a group of panels over ALL rows, so a panel is read from memory once
 * per call and reused from cache by every row (with row-block tiles each
 * 96-row block re-read all the weights); the results are bit for bit those of
 * the row-block path.
 */
#ifndef G3N_GEMM_PACKED_H
#define G3N_GEMM_PACKED_H

#include <stddef.h>
#include <stdint.h>

#include "matmul.h"
#include "status.h"

typedef enum g3n_precision { G3N_PRECISION_F32 = 0, G3N_PRECISION_BF16 = 1, G3N_PRECISION_INT8 = 2 } g3n_precision;

/* "f32" | "bf16" | "int8" (also "exact" = f32). */
int g3n_precision_parse(const char *text, g3n_precision *out, g3n_error *err);
const char *g3n_precision_name(g3n_precision precision);
/* The towers' default when a caller does not choose: env G3N_TOWER_PRECISION
 * ("f32" | "bf16", e.g. set for the daemons), else F32 (exact). */
g3n_precision g3n_tower_precision_default(void);

/* Rows of x per tile (the epilogue's granularity) and outputs per panel. */
#define G3N_GEMM_ROW_BLOCK 96
#define G3N_GEMM_PANEL 32

typedef enum g3n_panel_format {
    G3N_PANELS_NONE = 0,
    G3N_PANELS_F32 = 1,  /* [k][32] f32 per panel */
    G3N_PANELS_BF16 = 2, /* [depth/2][32][2] bf16 per panel */
    G3N_PANELS_I8 = 3    /* [depth/4][32][4] int8 per panel, then f32 scales [n32] and int32 sums [n32] */
} g3n_panel_format;

typedef struct g3n_packed_matrix {
    g3n_matrix source;        /* borrowed view of the weights (fallback path) */
    g3n_precision precision;  /* compute precision */
    g3n_panel_format format;  /* NONE: not packed, calls go to g3n_matmul(source) */
    int64_t rows, cols;       /* n outputs, k inputs */
    int64_t depth;            /* k rounded up to even (bf16 pairs) or to 4 (int8 quads) */
    void *panels;             /* owned: ceil(n/32) panels of depth x 32 values */
    size_t capacity;          /* bytes allocated for panels */
} g3n_packed_matrix;

/* Which kernels g3n_gemm_packed runs for `precision` at the active ISA, e.g.
 * "avx2 (avx-vnni vpdpbusd)" (static string; for benches and logs). */
const char *g3n_gemm_packed_kernel_name(g3n_precision precision);

/* Packs w for `precision` (allocates; re-packing a matrix into the same struct
 * reuses its storage when it is large enough: attention packs its keys and
 * values per block this way). Zero-initialise the struct before the first call. */
int g3n_packed_matrix_pack(g3n_packed_matrix *packed, const g3n_matrix *w, g3n_precision precision, g3n_error *err);
void g3n_packed_matrix_free(g3n_packed_matrix *packed); /* accepts a zeroed struct */
/* Bytes of packed weights (0 when not packed). */
size_t g3n_packed_matrix_bytes(const g3n_packed_matrix *packed);

/* Called on rows [first_row, first_row + rows) of y once all their outputs are
 * final: y points at row first_row. Runs inside the parallel region when the
 * GEMM is parallel over row blocks (so it must not rely on being alone), or
 * once for all rows after the products otherwise. */
typedef void (*g3n_gemm_rows_fn)(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride);
typedef struct g3n_gemm_epilogue {
    g3n_gemm_rows_fn apply; /* NULL: none */
    void *user;
    /* nonzero: y = y · sigmoid(y) (SiLU) on every output, applied to each block
     * as the kernels store it (in cache: no extra pass over y), before `apply`.
     * The sigmoid is g3n_sigmoid_avx512 (simd_exp_avx512.h) with AVX-512, else
     * 1 / (1 + expf(-y)). */
    int silu;
} g3n_gemm_epilogue;

/* y[m][n] = x[m][k] · Wᵀ, then the epilogue (NULL: none). x row stride
 * x_stride floats, y row stride y_stride floats (>= n). */
void g3n_gemm_packed(const float *x, int64_t m, size_t x_stride, const g3n_packed_matrix *w, float *y,
                     size_t y_stride, const g3n_gemm_epilogue *epilogue);

/* ys[j][m][n_j] = x[m][k] · W_jᵀ for `count` matrices of the same k (e.g.
 * q/k/v projections of one input), no epilogue. With int8 (bf16) compute x is
 * quantised (rounded) once for all of them and the panels of every matrix are one pool
 * of tiles (one parallel region); otherwise one g3n_gemm_packed per matrix. */
void g3n_gemm_packed_many(const float *x, int64_t m, size_t x_stride, const g3n_packed_matrix *const *ws,
                          float *const *ys, const size_t *y_strides, int count);

#endif
