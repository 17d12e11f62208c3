/* gemm_packed.c - packing and the tile driver of g3n_gemm_packed (see
 * gemm_packed.h); the micro-kernels are in gemm_packed_avx512.c and
 * gemm_packed_avx2.c (the same panels), one table row per instruction set
 * indexed by g3n_isa_active(). */
#include "gemm_packed.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_packed_internal.h"
#include "thread_cleanup.h"

/* Inputs per K block: one panel block is 32 KB (f32: 256 x 32 x 4 B, bf16:
 * 512 x 32 x 2 B) and stays in L1 while the 12 micro-rows of a row block pass. */
#define KC_F32 256
#define KC_BF16 512
/* Panels per column chunk: a row block's outputs for one chunk (96 x 256 f32,
 * 96 KB) stay in L2 across the K blocks. */
#define CHUNK_PANELS 8

/* The kernels of one instruction set (gemm_packed_internal.h). */
typedef struct tower_kernels {
    g3n_gemm_packed_kernel f32, bf16_widen;
    g3n_gemm_packed_kernel bf16_dot; /* NULL: none (AVX2: bf16 compute widens the weights, x stays f32) */
    void (*i8)(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads, const float *x_scale,
               const float *w_scale, const int32_t *w_sum, float *y, size_t y_stride, int columns);
    void (*rows_to_u8)(const float *x, int64_t rows, size_t x_stride, int64_t k, uint8_t *out, int64_t depth,
                       float *scale);
    void (*silu_block)(float *y, size_t y_stride, int64_t rows, int columns);
    const char *names[3];   /* by g3n_precision, for benchmarks */
    const char *i8_vnni_name; /* the int8 kernel's name where g3n_gemm_avx_vnni() (NULL: names[INT8]) */
} tower_kernels;

/* By g3n_isa; NULL below AVX2 (nothing is packed there: calls go to g3n_matmul). */
static const tower_kernels avx512_kernels = {
    g3n_gemm_kernel_f32_avx512, g3n_gemm_kernel_bf16_widen_avx512, g3n_gemm_kernel_bf16_dot_avx512,
    g3n_gemm_kernel_i8_avx512,  g3n_gemm_rows_to_u8_avx512,        g3n_gemm_silu_block_avx512,
    {"avx512 (f32 fma)", "avx512 (vdpbf16ps)", "avx512 (vpdpbusd)"}, NULL,
};
static const tower_kernels avx2_kernels = {
    g3n_gemm_kernel_f32_avx2, g3n_gemm_kernel_bf16_widen_avx2, NULL,
    g3n_gemm_kernel_i8_avx2,  g3n_gemm_rows_to_u8_avx2,        g3n_gemm_silu_block_avx2,
    {"avx2 (f32 fma)", "avx2 (bf16 weights, f32 fma)", "avx2 (vpmaddubsw)"}, "avx2 (avx-vnni vpdpbusd)",
};
static const tower_kernels *const kernels_by_isa[G3N_ISA_COUNT] = {
    [G3N_ISA_PORTABLE] = NULL,
    [G3N_ISA_AVX2] = &avx2_kernels,
    [G3N_ISA_AVX512] = &avx512_kernels,
};

static const tower_kernels *active_kernels(void)
{
    return kernels_by_isa[g3n_isa_active()];
}

const char *g3n_gemm_packed_kernel_name(g3n_precision precision)
{
    const tower_kernels *kernels = active_kernels();
    if (!kernels)
        return "portable (g3n_matmul)";
    if (precision == G3N_PRECISION_INT8 && kernels->i8_vnni_name && g3n_gemm_avx_vnni())
        return kernels->i8_vnni_name;
    return kernels->names[precision == G3N_PRECISION_INT8 ? 2 : precision == G3N_PRECISION_BF16 ? 1 : 0];
}

int g3n_precision_parse(const char *text, g3n_precision *out, g3n_error *err)
{
    if (text && (strcmp(text, "f32") == 0 || strcmp(text, "exact") == 0)) {
        *out = G3N_PRECISION_F32;
        return G3N_OK;
    }
    if (text && strcmp(text, "bf16") == 0) {
        *out = G3N_PRECISION_BF16;
        return G3N_OK;
    }
    if (text && strcmp(text, "int8") == 0) {
        *out = G3N_PRECISION_INT8;
        return G3N_OK;
    }
    return g3n_error_set(err, "unknown precision '%s' (want f32, bf16 or int8)", text ? text : "(null)");
}

const char *g3n_precision_name(g3n_precision precision)
{
    return precision == G3N_PRECISION_BF16 ? "bf16" : precision == G3N_PRECISION_INT8 ? "int8" : "f32";
}

g3n_precision g3n_tower_precision_default(void)
{
    g3n_precision precision = G3N_PRECISION_F32;
    const char *env = getenv("G3N_TOWER_PRECISION");
    if (env && env[0] && g3n_precision_parse(env, &precision, NULL) != G3N_OK)
        precision = G3N_PRECISION_F32;
    return precision;
}

void g3n_packed_matrix_free(g3n_packed_matrix *packed)
{
    g3n_aligned_free(packed->panels);
    memset(packed, 0, sizeof *packed);
}

size_t g3n_packed_matrix_bytes(const g3n_packed_matrix *packed)
{
    if (packed->format == G3N_PANELS_NONE)
        return 0;
    const size_t panels = (size_t)((packed->rows + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL);
    if (packed->format == G3N_PANELS_I8) /* int8 panels, then a scale and a sum per output */
        return panels * G3N_GEMM_PANEL * ((size_t)packed->depth + sizeof(float) + sizeof(int32_t));
    return packed->format == G3N_PANELS_F32 ? panels * (size_t)packed->cols * G3N_GEMM_PANEL * sizeof(float)
                                            : panels * (size_t)packed->depth * G3N_GEMM_PANEL * sizeof(uint16_t);
}

int g3n_packed_matrix_pack(g3n_packed_matrix *packed, const g3n_matrix *w, g3n_precision precision, g3n_error *err)
{
    packed->source = *w;
    packed->precision = precision;
    packed->rows = w->rows;
    packed->cols = w->cols;
    if (precision == G3N_PRECISION_INT8 && w->cols > 65536)
        precision = packed->precision = G3N_PRECISION_BF16; /* int32 sums of 255 * 127 per input would overflow */
    packed->depth = precision == G3N_PRECISION_INT8 ? (w->cols + 3) & ~(int64_t)3 : (w->cols + 1) & ~(int64_t)1;
    packed->format = G3N_PANELS_NONE;
    if (!active_kernels() || w->rows <= 0 || w->cols <= 0)
        return G3N_OK; /* the fallback multiplies the source */
    /* bf16 weights stay bf16 (exact, half the bytes); f32/f16 ones are f32 unless bf16 compute asks to round */
    const g3n_panel_format format = precision == G3N_PRECISION_INT8 ? G3N_PANELS_I8
                                    : precision == G3N_PRECISION_BF16 || w->dtype == G3N_DTYPE_BF16 ? G3N_PANELS_BF16
                                                                                                    : G3N_PANELS_F32;
    packed->format = format;
    const size_t bytes = g3n_packed_matrix_bytes(packed);
    if (bytes > packed->capacity) {
        g3n_aligned_free(packed->panels);
        packed->panels = g3n_aligned_alloc(bytes);
        packed->capacity = packed->panels ? bytes : 0;
        if (!packed->panels) {
            packed->format = G3N_PANELS_NONE;
            return g3n_error_set(err, "packing a %lldx%lld matrix: out of memory (%zu bytes)", (long long)w->rows,
                                 (long long)w->cols, bytes);
        }
    }
    const int64_t n = w->rows, k = w->cols, depth = packed->depth;
    const int64_t panels = (n + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
    int failed = 0;
    /* bf16 weights into bf16 panels: copied as they are (no rounding to redo) */
    const int raw_bf16 = format == G3N_PANELS_BF16 && w->dtype == G3N_DTYPE_BF16;
#pragma omp parallel if (n * k > 65536) reduction(| : failed)
    {
        /* the panel's 32 rows, row-major (f32, or raw bf16), then transposed into the panel */
        void *rows = malloc((raw_bf16 ? sizeof(uint16_t) : sizeof(float)) * G3N_GEMM_PANEL * (size_t)(k + 1));
        if (!rows)
            failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < panels; p++) {
            if (!rows)
                continue;
            for (int c = 0; c < G3N_GEMM_PANEL; c++) {
                const int64_t j = p * G3N_GEMM_PANEL + c;
                if (raw_bf16) {
                    uint16_t *r = (uint16_t *)rows + (size_t)c * (size_t)(k + 1);
                    if (j < n)
                        memcpy(r, (const char *)w->data + (size_t)j * w->row_stride, sizeof(uint16_t) * (size_t)k);
                    else
                        memset(r, 0, sizeof(uint16_t) * (size_t)k);
                    r[k] = 0; /* the pad of an odd k */
                } else {
                    float *r = (float *)rows + (size_t)c * (size_t)(k + 1);
                    if (j < n)
                        g3n_matrix_row_to_f32(w, j, r);
                    else
                        memset(r, 0, sizeof(float) * (size_t)k);
                    r[k] = 0.0f;
                }
            }
            const size_t row_length = (size_t)(k + 1);
            if (format == G3N_PANELS_I8) { /* per output: scale = max|w| / 127, w = round(w / scale) */
                int8_t *out = (int8_t *)packed->panels + (size_t)p * (size_t)depth * G3N_GEMM_PANEL;
                float *scales = (float *)((int8_t *)packed->panels + (size_t)panels * (size_t)depth * G3N_GEMM_PANEL);
                int32_t *sums = (int32_t *)(scales + panels * G3N_GEMM_PANEL);
                for (int c = 0; c < G3N_GEMM_PANEL; c++) {
                    const float *r = (const float *)rows + (size_t)c * row_length;
                    float max = 0.0f;
                    for (int64_t kk = 0; kk < k; kk++)
                        max = fabsf(r[kk]) > max ? fabsf(r[kk]) : max;
                    const float scale = max > 0.0f ? max / 127.0f : 1.0f;
                    int32_t sum = 0;
                    for (int64_t kk = 0; kk < depth; kk++) {
                        int32_t q = kk < k ? (int32_t)lrintf(r[kk] / scale) : 0;
                        q = q > 127 ? 127 : q < -127 ? -127 : q;
                        out[(kk / 4) * 4 * G3N_GEMM_PANEL + 4 * c + (kk & 3)] = (int8_t)q;
                        sum += q;
                    }
                    scales[p * G3N_GEMM_PANEL + c] = scale;
                    sums[p * G3N_GEMM_PANEL + c] = sum;
                }
            } else if (format == G3N_PANELS_F32) {
                const float *in = rows;
                float *out = (float *)packed->panels + (size_t)p * (size_t)k * G3N_GEMM_PANEL;
                for (int64_t kk = 0; kk < k; kk++)
                    for (int c = 0; c < G3N_GEMM_PANEL; c++)
                        out[kk * G3N_GEMM_PANEL + c] = in[(size_t)c * row_length + (size_t)kk];
            } else { /* [depth/2][32][2]: pair (kk, kk+1) of output c */
                uint16_t *out = (uint16_t *)packed->panels + (size_t)p * (size_t)depth * G3N_GEMM_PANEL;
                for (int64_t kk = 0; kk < depth; kk += 2)
                    for (int c = 0; c < G3N_GEMM_PANEL; c++) {
                        const size_t at = (size_t)c * row_length + (size_t)kk;
                        uint16_t lo, hi;
                        if (raw_bf16) {
                            lo = ((const uint16_t *)rows)[at];
                            hi = ((const uint16_t *)rows)[at + 1];
                        } else {
                            lo = g3n_f32_to_bf16(((const float *)rows)[at]);
                            hi = g3n_f32_to_bf16(((const float *)rows)[at + 1]);
                        }
                        out[kk * G3N_GEMM_PANEL + 2 * c] = lo;
                        out[kk * G3N_GEMM_PANEL + 2 * c + 1] = hi;
                    }
            }
        }
        free(rows);
    }
    if (failed) {
        packed->format = G3N_PANELS_NONE;
        return g3n_error_set(err, "packing a %lldx%lld matrix: out of memory", (long long)n, (long long)k);
    }
    return G3N_OK;
}

/* bf16 copies of a row block's x rows, one per thread, kept between calls. */
static _Thread_local uint16_t *thread_rows;
static _Thread_local size_t thread_rows_capacity;

static _Thread_local uint8_t *shared_rows;
static _Thread_local size_t shared_rows_capacity;

/* Both buffers go when their thread ends (thread_cleanup.h). */
static void release_thread_rows(void)
{
    g3n_aligned_free(thread_rows);
    thread_rows = NULL;
    thread_rows_capacity = 0;
    g3n_aligned_free(shared_rows);
    shared_rows = NULL;
    shared_rows_capacity = 0;
}

static uint16_t *row_buffer(size_t elements)
{
    if (elements > thread_rows_capacity) {
        g3n_thread_cleanup_arm(release_thread_rows);
        g3n_aligned_free(thread_rows);
        thread_rows = g3n_aligned_alloc(elements * sizeof(uint16_t));
        thread_rows_capacity = thread_rows ? elements : 0;
    }
    return thread_rows;
}

/* int8: the row block's x rows quantised once, then each panel over the whole K. */
static int run_tile_int8(const tower_kernels *kernels, const float *x, size_t x_stride, const g3n_packed_matrix *w,
                         float *y, size_t y_stride, int64_t r0, int64_t r1, int64_t p0, int64_t p1, int silu)
{
    const int64_t n = w->rows, k = w->cols, depth = w->depth;
    const int64_t panels = (n + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
    /* depth/2 uint16 = depth bytes of u8 rows, then one f32 scale per row */
    uint16_t *buffer = row_buffer((size_t)(r1 - r0) * (size_t)(depth / 2) + 2 * G3N_GEMM_ROW_BLOCK);
    if (!buffer)
        return G3N_ERR;
    uint8_t *x_u8 = (uint8_t *)buffer;
    float *x_scale = (float *)(buffer + (size_t)(r1 - r0) * (size_t)(depth / 2));
    kernels->rows_to_u8(x + (size_t)r0 * x_stride, r1 - r0, x_stride, k, x_u8, depth, x_scale);
    const int8_t *panel0 = w->panels;
    const float *w_scale = (const float *)(panel0 + (size_t)panels * (size_t)depth * G3N_GEMM_PANEL);
    const int32_t *w_sum = (const int32_t *)(w_scale + panels * G3N_GEMM_PANEL);
    for (int64_t p = p0; p < p1; p++) {
        const int columns =
            (int)(n - p * G3N_GEMM_PANEL < G3N_GEMM_PANEL ? n - p * G3N_GEMM_PANEL : G3N_GEMM_PANEL);
        for (int64_t i = r0; i < r1; i += G3N_GEMM_PACKED_MR) {
            const int rows = (int)(r1 - i < G3N_GEMM_PACKED_MR ? r1 - i : G3N_GEMM_PACKED_MR);
            kernels->i8(x_u8 + (size_t)(i - r0) * (size_t)depth, (size_t)depth, rows,
                        panel0 + (size_t)p * (size_t)depth * G3N_GEMM_PANEL, depth / 4, x_scale + (i - r0),
                        w_scale + p * G3N_GEMM_PANEL, w_sum + p * G3N_GEMM_PANEL,
                        y + (size_t)i * y_stride + (size_t)(p * G3N_GEMM_PANEL), y_stride, columns);
            if (silu)
                kernels->silu_block(y + (size_t)i * y_stride + (size_t)(p * G3N_GEMM_PANEL), y_stride, rows, columns);
        }
    }
    return G3N_OK;
}

/* y rows [r0, r1) x panels [p0, p1). */
static void run_tile(const tower_kernels *kernels, const float *x, size_t x_stride, const g3n_packed_matrix *w,
                     float *y, size_t y_stride, int64_t r0, int64_t r1, int64_t p0, int64_t p1, int silu)
{
    const int64_t n = w->rows, k = w->cols, depth = w->depth;
    if (w->format == G3N_PANELS_I8) {
        if (run_tile_int8(kernels, x, x_stride, w, y, y_stride, r0, r1, p0, p1, silu) != G3N_OK) { /* no memory */
            g3n_matrix part = g3n_matrix_rows(&w->source, p0 * G3N_GEMM_PANEL,
                                              (p1 * G3N_GEMM_PANEL < n ? p1 * G3N_GEMM_PANEL : n) - p0 * G3N_GEMM_PANEL);
            for (int64_t i = r0; i < r1; i++)
                for (int64_t j = 0; j < part.rows; j++)
                    y[(size_t)i * y_stride + (size_t)(p0 * G3N_GEMM_PANEL + j)] =
                        g3n_matrix_row_dot(&part, j, x + (size_t)i * x_stride);
            if (silu)
                kernels->silu_block(y + (size_t)r0 * y_stride + (size_t)(p0 * G3N_GEMM_PANEL), y_stride, r1 - r0,
                                    (int)part.rows);
        }
        return;
    }
    g3n_gemm_packed_kernel kernel = kernels->f32;
    int64_t kc_block = KC_F32;
    const uint16_t *x_bf16 = NULL;
    if (w->format == G3N_PANELS_BF16) {
        kc_block = KC_BF16;
        kernel = kernels->bf16_widen;
        if (w->precision == G3N_PRECISION_BF16 && kernels->bf16_dot) {
            uint16_t *rows = row_buffer((size_t)(r1 - r0) * (size_t)depth);
            if (rows) { /* (without memory the widening kernel is a more exact substitute) */
                g3n_gemm_rows_to_bf16_avx512(x + (size_t)r0 * x_stride, r1 - r0, x_stride, k, rows, depth);
                x_bf16 = rows;
                kernel = kernels->bf16_dot;
            }
        }
    }
    for (int64_t c0 = p0; c0 < p1; c0 += CHUNK_PANELS) {
        const int64_t c1 = c0 + CHUNK_PANELS < p1 ? c0 + CHUNK_PANELS : p1;
        for (int64_t k0 = 0; k0 < k; k0 += kc_block) {
            const int64_t kc = k - k0 < kc_block ? k - k0 : kc_block;
            for (int64_t p = c0; p < c1; p++) {
                const void *panel =
                    w->format == G3N_PANELS_F32
                        ? (const void *)((const float *)w->panels + ((size_t)p * (size_t)k + (size_t)k0) * G3N_GEMM_PANEL)
                        : (const void *)((const uint16_t *)w->panels +
                                         ((size_t)p * (size_t)depth + (size_t)k0) * G3N_GEMM_PANEL);
                const int columns = (int)(n - p * G3N_GEMM_PANEL < G3N_GEMM_PANEL ? n - p * G3N_GEMM_PANEL
                                                                                  : G3N_GEMM_PANEL);
                float *y_panel = y + p * G3N_GEMM_PANEL;
                for (int64_t i = r0; i < r1; i += G3N_GEMM_PACKED_MR) {
                    const int rows = (int)(r1 - i < G3N_GEMM_PACKED_MR ? r1 - i : G3N_GEMM_PACKED_MR);
                    if (x_bf16)
                        kernel(x_bf16 + (size_t)(i - r0) * (size_t)depth + (size_t)k0, (size_t)depth, rows, panel, kc,
                               y_panel + (size_t)i * y_stride, y_stride, columns, k0 > 0);
                    else
                        kernel(x + (size_t)i * x_stride + (size_t)k0, x_stride, rows, panel, kc,
                               y_panel + (size_t)i * y_stride, y_stride, columns, k0 > 0);
                    if (silu && k0 + kc >= k) /* the block's outputs are final */
                        kernels->silu_block(y_panel + (size_t)i * y_stride, y_stride, rows, columns);
                }
            }
        }
    }
}

/* int8 or bf16 dot products with few rows: x quantised / rounded to bf16 once
 * (shared by the whole parallel region, in the calling thread's buffer),
 * tiles = groups of panels over all rows. */
/* Panels per tile of the few-rows path: enough tiles for a dynamic
 * schedule (4 per thread), at most 8 panels (8 x 32 x 6144 B = 1.5 MB). */
static int64_t few_rows_group_panels(int64_t panels, int threads)
{
    int64_t per = panels / (4 * (int64_t)(threads > 0 ? threads : 1));
    return per < 1 ? 1 : per > 8 ? 8 : per;
}

/* Returns G3N_ERR (nothing computed) when the quantised rows do not fit in memory. */
static int few_rows(const tower_kernels *kernels, const float *x, int64_t m, size_t x_stride,
                    const g3n_packed_matrix *const *ws, float *const *ys, const size_t *y_strides, int count, int silu)
{
    const int64_t k = ws[0]->cols, depth = ws[0]->depth;
    const int bf16 = ws[0]->format == G3N_PANELS_BF16; /* else int8 */
    const size_t row_bytes = (size_t)m * (size_t)depth * (bf16 ? sizeof(uint16_t) : 1),
                 scale_at = (row_bytes + 63) & ~(size_t)63;
    const size_t bytes = scale_at + sizeof(float) * (size_t)m;
    if (bytes > shared_rows_capacity) {
        g3n_thread_cleanup_arm(release_thread_rows);
        g3n_aligned_free(shared_rows);
        shared_rows = g3n_aligned_alloc(bytes);
        shared_rows_capacity = shared_rows ? bytes : 0;
        if (!shared_rows)
            return G3N_ERR;
    }
    uint8_t *x_u8 = shared_rows; /* (the workers see the caller's buffer through this, not the thread-local) */
    uint16_t *x_bf16_rows = (uint16_t *)shared_rows;
    float *x_scale = (float *)(shared_rows + scale_at);
    const int threads = omp_get_max_threads();
    int64_t tiles = 0, per_group[8], first_tile[9];
    for (int j = 0; j < count; j++) {
        const int64_t panels = (ws[j]->rows + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
        per_group[j] = few_rows_group_panels(panels, threads);
        first_tile[j] = tiles;
        tiles += (panels + per_group[j] - 1) / per_group[j];
    }
    first_tile[count] = tiles;
    double work = 0.0;
    for (int j = 0; j < count; j++)
        work += (double)m * (double)ws[j]->rows * (double)k;
    const int64_t micro_rows = (m + G3N_GEMM_PACKED_MR - 1) / G3N_GEMM_PACKED_MR;
#pragma omp parallel if (work > 262144.0)
    {
#pragma omp for schedule(static)
        for (int64_t b = 0; b < micro_rows; b++) {
            const int64_t r0 = b * G3N_GEMM_PACKED_MR, rows = m - r0 < G3N_GEMM_PACKED_MR ? m - r0 : G3N_GEMM_PACKED_MR;
            if (bf16)
                g3n_gemm_rows_to_bf16_avx512(x + (size_t)r0 * x_stride, rows, x_stride, k,
                                             x_bf16_rows + (size_t)r0 * (size_t)depth, depth);
            else
                kernels->rows_to_u8(x + (size_t)r0 * x_stride, rows, x_stride, k, x_u8 + (size_t)r0 * (size_t)depth,
                                    depth, x_scale + r0);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tiles; t++) {
            int j = 0;
            while (t >= first_tile[j + 1])
                j++;
            const g3n_packed_matrix *w = ws[j];
            const int64_t n = w->rows, panels = (n + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
            const int64_t p0 = (t - first_tile[j]) * per_group[j];
            const int64_t p1 = p0 + per_group[j] < panels ? p0 + per_group[j] : panels;
            if (bf16) { /* K blocks in the row-block path's order: the same sums, bit for bit */
                const uint16_t *x_bf16 = x_bf16_rows;
                for (int64_t p = p0; p < p1; p++) {
                    const int columns =
                        (int)(n - p * G3N_GEMM_PANEL < G3N_GEMM_PANEL ? n - p * G3N_GEMM_PANEL : G3N_GEMM_PANEL);
                    const uint16_t *panel = (const uint16_t *)w->panels + (size_t)p * (size_t)depth * G3N_GEMM_PANEL;
                    for (int64_t k0 = 0; k0 < k; k0 += KC_BF16) {
                        const int64_t kc = k - k0 < KC_BF16 ? k - k0 : KC_BF16;
                        for (int64_t i = 0; i < m; i += G3N_GEMM_PACKED_MR) {
                            const int rows = (int)(m - i < G3N_GEMM_PACKED_MR ? m - i : G3N_GEMM_PACKED_MR);
                            g3n_gemm_kernel_bf16_dot_avx512(x_bf16 + (size_t)i * (size_t)depth + (size_t)k0,
                                                            (size_t)depth, rows, panel + (size_t)k0 * G3N_GEMM_PANEL,
                                                            kc, ys[j] + (size_t)i * y_strides[j] +
                                                                    (size_t)(p * G3N_GEMM_PANEL),
                                                            y_strides[j], columns, k0 > 0);
                        }
                    }
                    if (silu) /* this panel's column strip is final (m x 32 floats, still in cache) */
                        kernels->silu_block(ys[j] + (size_t)(p * G3N_GEMM_PANEL), y_strides[j], m, columns);
                }
                continue;
            }
            const int8_t *panel0 = w->panels;
            const float *w_scale = (const float *)(panel0 + (size_t)panels * (size_t)depth * G3N_GEMM_PANEL);
            const int32_t *w_sum = (const int32_t *)(w_scale + panels * G3N_GEMM_PANEL);
            for (int64_t p = p0; p < p1; p++) {
                const int columns =
                    (int)(n - p * G3N_GEMM_PANEL < G3N_GEMM_PANEL ? n - p * G3N_GEMM_PANEL : G3N_GEMM_PANEL);
                for (int64_t i = 0; i < m; i += G3N_GEMM_PACKED_MR) {
                    const int rows = (int)(m - i < G3N_GEMM_PACKED_MR ? m - i : G3N_GEMM_PACKED_MR);
                    kernels->i8(x_u8 + (size_t)i * (size_t)depth, (size_t)depth, rows,
                                panel0 + (size_t)p * (size_t)depth * G3N_GEMM_PANEL, depth / 4, x_scale + i,
                                w_scale + p * G3N_GEMM_PANEL, w_sum + p * G3N_GEMM_PANEL,
                                ys[j] + (size_t)i * y_strides[j] + (size_t)(p * G3N_GEMM_PANEL), y_strides[j],
                                columns);
                    if (silu)
                        kernels->silu_block(ys[j] + (size_t)i * y_strides[j] + (size_t)(p * G3N_GEMM_PANEL),
                                            y_strides[j], rows, columns);
                }
            }
        }
    }
    return G3N_OK;
}

/* Without the AVX-512 kernels: SiLU in a pass of its own (the portable sigmoid). */
static void silu_rows(float *y, int64_t m, int64_t n, size_t y_stride)
{
#pragma omp parallel for schedule(static) if (m * n > 65536)
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float *v = y + (size_t)i * y_stride + (size_t)j;
            *v = *v * (1.0f / (1.0f + expf(-*v)));
        }
}

/* The few-rows path applies (int8, or bf16 compute): the same row count criterion as the panel split below. */
static int few_rows_applies(const tower_kernels *kernels, const g3n_packed_matrix *w, int64_t m)
{
    const int64_t row_blocks = (m + G3N_GEMM_ROW_BLOCK - 1) / G3N_GEMM_ROW_BLOCK;
    const int threads = omp_get_max_threads();
    const int fast = w->format == G3N_PANELS_I8 || (w->format == G3N_PANELS_BF16 &&
                                                    w->precision == G3N_PRECISION_BF16 && kernels->bf16_dot);
    const int64_t panels = (w->rows + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
    /* (its tiles split only the panels: with fewer than 2 per thread the row blocks parallelise better) */
    return fast && w->cols > 0 && panels >= 2 * (int64_t)threads &&
           (row_blocks < 4 * threads || row_blocks <= 4);
}

void g3n_gemm_packed_many(const float *x, int64_t m, size_t x_stride, const g3n_packed_matrix *const *ws,
                          float *const *ys, const size_t *y_strides, int count)
{
    if (m <= 0 || count <= 0)
        return;
    const tower_kernels *kernels = active_kernels();
    int same = count <= 8 && kernels;
    for (int j = 0; same && j < count; j++)
        same = few_rows_applies(kernels, ws[j], m) && ws[j]->rows > 0 && ws[j]->cols == ws[0]->cols &&
               ws[j]->depth == ws[0]->depth && ws[j]->format == ws[0]->format;
    if (same && few_rows(kernels, x, m, x_stride, ws, ys, y_strides, count, 0) == G3N_OK)
        return;
    for (int j = 0; j < count; j++)
        g3n_gemm_packed(x, m, x_stride, ws[j], ys[j], y_strides[j], NULL);
}

void g3n_gemm_packed(const float *x, int64_t m, size_t x_stride, const g3n_packed_matrix *w, float *y,
                     size_t y_stride, const g3n_gemm_epilogue *epilogue)
{
    if (m <= 0 || w->rows <= 0)
        return;
    const int silu = epilogue && epilogue->silu;
    const tower_kernels *kernels = active_kernels();
    if (w->format == G3N_PANELS_NONE || w->cols <= 0 || !kernels) {
        g3n_matmul(x, m, x_stride, &w->source, y, y_stride);
        if (silu)
            silu_rows(y, m, w->rows, y_stride);
        if (epilogue && epilogue->apply)
            epilogue->apply(epilogue->user, y, 0, m, y_stride);
        return;
    }
    /* (with an epilogue the row-block path runs it per block in parallel while the block is in cache) */
    if (!(epilogue && epilogue->apply) && few_rows_applies(kernels, w, m) &&
        few_rows(kernels, x, m, x_stride, &w, &y, &y_stride, 1, silu) == G3N_OK)
        return;
    const int64_t row_blocks = (m + G3N_GEMM_ROW_BLOCK - 1) / G3N_GEMM_ROW_BLOCK;
    const int64_t panels = (w->rows + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
    const int threads = omp_get_max_threads();
    /* Enough row blocks: each tile is a whole row block (its epilogue runs in
     * cache). Few rows (audio chunks): tiles also split the panels. */
    int64_t groups = 1;
    if (threads > 1 && row_blocks < 4 * threads) {
        groups = (panels + CHUNK_PANELS - 1) / CHUNK_PANELS;
        if (groups * row_blocks > 8 * threads)
            groups = (8 * threads + row_blocks - 1) / row_blocks;
        if (groups < 1)
            groups = 1;
    }
    const int64_t per_group = (panels + groups - 1) / groups;
    const int64_t tiles = row_blocks * groups;
    const int fused = groups == 1 && epilogue && epilogue->apply;
    const double work = (double)m * (double)w->rows * (double)w->cols;
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1 && work > 262144.0)
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t block = t / groups, group = t % groups;
        const int64_t r0 = block * G3N_GEMM_ROW_BLOCK, r1 = r0 + G3N_GEMM_ROW_BLOCK < m ? r0 + G3N_GEMM_ROW_BLOCK : m;
        const int64_t p0 = group * per_group, p1 = p0 + per_group < panels ? p0 + per_group : panels;
        if (p0 < p1)
            run_tile(kernels, x, x_stride, w, y, y_stride, r0, r1, p0, p1, silu);
        if (fused)
            epilogue->apply(epilogue->user, y + (size_t)r0 * y_stride, r0, r1 - r0, y_stride);
    }
    if (epilogue && epilogue->apply && !fused)
        epilogue->apply(epilogue->user, y, 0, m, y_stride);
}
