#include "matmul.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_packed.h"
#include "gemm_packed_internal.h"
#include "matmul_internal.h"
#include "quant.h"
#include "thread_cleanup.h"

void g3n_set_threads(int threads)
{
    if (threads > 0)
        omp_set_num_threads(threads);
}

int g3n_get_threads(void)
{
    return omp_get_max_threads();
}

/* ---- matrices ---- */

static inline const void *row_pointer(const g3n_matrix *w, int64_t row)
{
    return g3n_matrix_row(w, row);
}

static inline const g3n_matrix_format *format_of(const g3n_matrix *w)
{
    return g3n_matrix_format_of(w->dtype);
}

float g3n_matrix_row_dot(const g3n_matrix *w, int64_t row, const float *x)
{
    float y;
    g3n_matrix one = g3n_matrix_rows(w, row, 1);
    const g3n_matrix_format *format = format_of(w);
    const g3n_matrix_kernels *kernels = g3n_matrix_format_kernels(format);
    if (format->quantised) {
        float *values = malloc(sizeof(float) * (size_t)w->cols);
        double sum = 0.0;
        if (values) {
            format->to_f32(w, row, 0, w->cols, values);
            for (int64_t i = 0; i < w->cols; i++)
                sum += (double)values[i] * x[i];
        }
        free(values);
        return (float)sum;
    }
    if (kernels->dot)
        kernels->dot(x, 1, (size_t)w->cols, &one, &y, 1, 0, 1);
    else {
        const int64_t k = w->cols;
        float sum = 0.0f;
        const void *r = row_pointer(w, row);
        for (int64_t i = 0; i < k; i++) {
            float v;
            g3n_convert_to_f32(w->dtype, (const char *)r + (size_t)i * g3n_dtype_size(w->dtype), &v, 1);
            sum += v * x[i];
        }
        y = sum;
    }
    return y;
}

void g3n_pack_panel_f32(const g3n_matrix *w, int64_t row0, int64_t rows, int64_t panel_width, int64_t k0,
                        int64_t kc, float *out)
{
    float row_buffer[G3N_GEMM_KC];
    for (int64_t r = 0; r < panel_width; r++) {
        if (r < rows) {
            size_t element = g3n_dtype_size(w->dtype);
            g3n_convert_to_f32(w->dtype, (const char *)row_pointer(w, row0 + r) + (size_t)k0 * element, row_buffer,
                               kc);
            for (int64_t kk = 0; kk < kc; kk++)
                out[kk * panel_width + r] = row_buffer[kk];
        } else {
            for (int64_t kk = 0; kk < kc; kk++)
                out[kk * panel_width + r] = 0.0f;
        }
    }
}

/* ---- portable path ---- */

static void matmul_portable(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride)
{
    const int64_t n = w->rows, k = w->cols;
#pragma omp parallel
    {
        float *row = malloc(sizeof(float) * (size_t)(k ? k : 1));
#pragma omp for schedule(static)
        for (int64_t j = 0; j < n; j++) {
            g3n_convert_to_f32(w->dtype, row_pointer(w, j), row, k);
            for (int64_t i = 0; i < m; i++) {
                const float *xi = x + (size_t)i * x_stride;
                float sum = 0.0f;
                for (int64_t kk = 0; kk < k; kk++)
                    sum += xi[kk] * row[kk];
                y[(size_t)i * y_stride + (size_t)j] = sum;
            }
        }
        free(row);
    }
}

/* ---- SIMD paths ---- */

static void matmul_dot(g3n_matrix_dot_kernel kernel, const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                       size_t y_stride)
{
    const int64_t n = w->rows;
    const int64_t block = 64;
    const int64_t blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n * w->cols > 32768)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t j0 = b * block, j1 = j0 + block < n ? j0 + block : n;
        for (int64_t i = 0; i < m; i += 4) {
            int64_t rows = m - i < 4 ? m - i : 4;
            kernel(x + (size_t)i * x_stride, rows, x_stride, w, y + (size_t)i * y_stride, y_stride, j0, j1);
        }
    }
}

static void matmul_gemm(g3n_matrix_micro_kernel kernel, int64_t panel_width, const float *x, int64_t m, size_t x_stride,
                        const g3n_matrix *w, float *y, size_t y_stride)
{
    const int64_t n = w->rows, k = w->cols;
    const int64_t panels = (n + panel_width - 1) / panel_width;
#pragma omp parallel
    {
        float *packed = g3n_aligned_alloc(sizeof(float) * G3N_GEMM_KC * (size_t)panel_width);
        float *x_tail = g3n_aligned_alloc(sizeof(float) * G3N_GEMM_MR * G3N_GEMM_KC);
        float *y_tail = g3n_aligned_alloc(sizeof(float) * G3N_GEMM_MR * (size_t)panel_width);
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < panels; p++) {
            const int64_t j0 = p * panel_width;
            const int64_t columns = n - j0 < panel_width ? n - j0 : panel_width;
            for (int64_t k0 = 0; k0 < k; k0 += G3N_GEMM_KC) {
                const int64_t kc = k - k0 < G3N_GEMM_KC ? k - k0 : G3N_GEMM_KC;
                const int accumulate = k0 > 0;
                g3n_pack_panel_f32(w, j0, columns, panel_width, k0, kc, packed);
                int64_t i = 0;
                for (; i + G3N_GEMM_MR <= m; i += G3N_GEMM_MR)
                    kernel(x + (size_t)i * x_stride + (size_t)k0, x_stride, packed, kc,
                           y + (size_t)i * y_stride + (size_t)j0, y_stride, columns, accumulate);
                if (i < m) { /* row tail through zero-padded buffers */
                    const int64_t rows = m - i;
                    memset(x_tail, 0, sizeof(float) * G3N_GEMM_MR * G3N_GEMM_KC);
                    for (int64_t r = 0; r < rows; r++) {
                        memcpy(x_tail + r * G3N_GEMM_KC, x + (size_t)(i + r) * x_stride + (size_t)k0,
                               sizeof(float) * (size_t)kc);
                        memcpy(y_tail + r * panel_width, y + (size_t)(i + r) * y_stride + (size_t)j0,
                               sizeof(float) * (size_t)columns);
                    }
                    kernel(x_tail, G3N_GEMM_KC, packed, kc, y_tail, (size_t)panel_width, columns, accumulate);
                    for (int64_t r = 0; r < rows; r++)
                        memcpy(y + (size_t)(i + r) * y_stride + (size_t)j0, y_tail + r * panel_width,
                               sizeof(float) * (size_t)columns);
                }
            }
        }
        g3n_aligned_free(packed);
        g3n_aligned_free(x_tail);
        g3n_aligned_free(y_tail);
    }
}

/* ---- quantised weights (quant.h): activations to int8 once per call, then
 * blocks of weight rows in parallel, four activation rows per weight load ---- */

/* One activation buffer per calling thread, grown on demand and kept (no
 * allocation per token once the largest shape has been seen). */
static _Thread_local g3n_quant_activations thread_activations;
static _Thread_local uint16_t *thread_bf16_rows; /* x rounded to bf16 (bf16 products) */
static _Thread_local size_t thread_bf16_capacity;

/* The buffers above go when their thread ends (thread_cleanup.h). */
static void release_thread_buffers(void)
{
    g3n_quant_activations_free(&thread_activations);
    g3n_aligned_free(thread_bf16_rows);
    thread_bf16_rows = NULL;
    thread_bf16_capacity = 0;
}

static void own_thread_buffers(void)
{
    g3n_thread_cleanup_arm(release_thread_buffers);
}

typedef g3n_matrix_quant_kernel quant_kernel;

/* Products with parallel work below this many multiply-adds run on the
 * calling thread: a parallel region costs more than they do (decode's small
 * LAuReL and per-layer products), and more so on a loaded host. */
#define QUANT_SERIAL_WORK 262144
/* What a weight row costs besides its multiply-adds (its sums reduced and
 * stored, the row's set-up), in multiply-adds: short rows are dearer than their
 * size says (LAuReL's 2048x64 linear_right: docs/performance.md). */
#define QUANT_ROW_WORK 192

/* Every output's weight rows in blocks, all blocks of all outputs in one
 * parallel loop; the activations are already in a (prepared for the dtype). */
/* Weight rows [j0, j1) of block b's output for every 8-row slice of x. */
static inline void quant_block(quant_kernel kernel, const g3n_quant_activations *a, int64_t m,
                               const g3n_matmul_output *outputs, const int64_t *first_block, int64_t block, int64_t b)
{
    int o = 0;
    while (b >= first_block[o + 1])
        o++;
    const g3n_matrix *w = outputs[o].w;
    const size_t y_stride = outputs[o].y_stride;
    const int64_t n = w->rows, j0 = (b - first_block[o]) * block, j1 = j0 + block < n ? j0 + block : n;
    for (int64_t i = 0; i < m; i += 8) {
        const int64_t rows = m - i < 8 ? m - i : 8;
        kernel(a, i, rows, w, outputs[o].y + (size_t)i * y_stride, y_stride, j0, j1);
    }
}

/* Every output's weight rows in blocks, all blocks of all outputs in one
 * parallel loop; the activations are already in a (prepared for the dtype). */
static void matmul_quant_blocks(const g3n_quant_activations *a, int64_t m, const g3n_matmul_output *outputs, int count)
{
    const quant_kernel kernel = g3n_matrix_format_kernels(format_of(outputs[0].w))->quant_dot;
    /* Blocks of weight rows that stay in L1/L2 while every 8-row slice of x
     * passes over them; one token: small blocks, so both threads get work. */
    const int64_t block = m > 8 ? 32 : 16;
    int64_t first_block[9], work = 0;
    first_block[0] = 0;
    for (int o = 0; o < count; o++) {
        first_block[o + 1] = first_block[o] + (outputs[o].w->rows + block - 1) / block;
        work += m * outputs[o].w->rows * (outputs[o].w->cols + QUANT_ROW_WORK);
    }
    const int64_t blocks = first_block[count];
    if (m <= 8) {
        /* Decode reads each weight once: memory-bound. Guided chunks give each
         * thread long contiguous runs of rows first (the hardware prefetcher
         * streams them at the machine's read bandwidth: docs/performance.md)
         * and small ones at the end, so a thread slowed by another process
         * does not hold the other up. */
#pragma omp parallel for schedule(guided) if (work > QUANT_SERIAL_WORK)
        for (int64_t b = 0; b < blocks; b++)
            quant_block(kernel, a, m, outputs, first_block, block, b);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) if (work > QUANT_SERIAL_WORK)
    for (int64_t b = 0; b < blocks; b++)
        quant_block(kernel, a, m, outputs, first_block, block, b);
}

static void matmul_quant(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y, size_t y_stride)
{
    g3n_quant_activations *a = &thread_activations;
    own_thread_buffers();
    if (g3n_quant_activations_prepare(a, x, m, x_stride, w->cols, w->dtype) != G3N_OK) {
        for (int64_t i = 0; i < m; i++) /* out of memory: slow but correct */
            for (int64_t j = 0; j < w->rows; j++)
                y[(size_t)i * y_stride + (size_t)j] = g3n_matrix_row_dot(w, j, x + (size_t)i * x_stride);
        return;
    }
    const g3n_matmul_output one = {w, y, y_stride};
    matmul_quant_blocks(a, m, &one, 1);
}

void g3n_matmul_many(const float *x, int64_t m, size_t x_stride, const g3n_matmul_output *outputs, int count)
{
    int shared = count >= 1 && count <= 8 && m > 0;
    for (int o = 0; o < count && shared; o++)
        shared = format_of(outputs[o].w)->quantised && outputs[o].w->dtype == outputs[0].w->dtype &&
                 outputs[o].w->cols == outputs[0].w->cols && outputs[o].w->rows > 0;
    if (shared)
        own_thread_buffers();
    if (shared && g3n_quant_activations_prepare(&thread_activations, x, m, x_stride, outputs[0].w->cols,
                                                outputs[0].w->dtype) == G3N_OK) {
        matmul_quant_blocks(&thread_activations, m, outputs, count);
        return;
    }
    for (int o = 0; o < count; o++)
        g3n_matmul(x, m, x_stride, outputs[o].w, outputs[o].y, outputs[o].y_stride);
}

#define GATHER_AHEAD 4 /* rows */

static inline void prefetch_row(const g3n_matrix *w, int64_t row)
{
    const char *p = (const char *)w->data + (size_t)row * w->row_stride;
    for (size_t at = 0; at < w->row_stride; at += 64)
        __builtin_prefetch(p + at, 0, 3);
}

void g3n_matmul_gather(const float *x, const g3n_matrix *w, const int32_t *rows, int64_t count, float *y)
{
    if (count <= 0)
        return;
    const g3n_matrix_format *format = format_of(w);
    const g3n_matrix_kernels *kernels = g3n_matrix_format_kernels(format);
    if (format->quantised) {
        g3n_quant_activations *a = &thread_activations;
        own_thread_buffers();
        if (g3n_quant_activations_prepare(a, x, 1, (size_t)w->cols, w->cols, w->dtype) == G3N_OK) {
            const quant_kernel kernel = kernels->quant_dot;
#pragma omp parallel for schedule(static) if (count * w->cols > QUANT_SERIAL_WORK)
            for (int64_t i = 0; i < count; i++) {
                if (i + GATHER_AHEAD < count) /* scattered rows: no prefetcher sees the next one coming */
                    prefetch_row(w, rows[i + GATHER_AHEAD]);
                const g3n_matrix one = g3n_matrix_rows(w, rows[i], 1);
                kernel(a, 0, 1, &one, y + i, 1, 0, 1);
            }
            return;
        }
    }
#pragma omp parallel for schedule(static) if (count * w->cols > 32768)
    for (int64_t i = 0; i < count; i++) {
        if (format->quantised || !kernels->dot) {
            y[i] = g3n_matrix_row_dot(w, rows[i], x);
        } else {
            const g3n_matrix one = g3n_matrix_rows(w, rows[i], 1);
            kernels->dot(x, 1, (size_t)w->cols, &one, y + i, 1, 0, 1);
        }
    }
}

void g3n_matrix_combine_rows(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count, float *y)
{
    const int64_t cols = w->cols;
    const g3n_matrix_format *format = format_of(w);
    const g3n_matrix_combine_kernel combine = g3n_matrix_format_kernels(format)->combine_group;
    if (combine) {
        const int64_t groups = g3n_quant_groups(cols);
#pragma omp parallel for schedule(static) if (count * cols > 32768)
        for (int64_t g = 0; g < groups; g++)
            combine(w, rows, coefs, count, g, y + g * G3N_QUANT_GROUP);
        return;
    }
    const int64_t slice = 256;
    const int64_t slices = (cols + slice - 1) / slice;
#pragma omp parallel for schedule(static) if (count * cols > 32768)
    for (int64_t s = 0; s < slices; s++) {
        const int64_t c0 = s * slice, c1 = c0 + slice < cols ? c0 + slice : cols, width = c1 - c0;
        float acc[256], values[256];
        for (int64_t c = 0; c < width; c++)
            acc[c] = 0.0f;
        for (int64_t i = 0; i < count; i++) {
            const float coef = coefs[i];
            format->to_f32(w, rows[i], c0, c1, values);
            for (int64_t c = 0; c < width; c++)
                acc[c] += coef * values[c];
        }
        memcpy(y + c0, acc, sizeof(float) * (size_t)width);
    }
}

/* ---- bf16 products (g3n_matrix.bf16_products): x rounded to bf16 once per
 * call, the weights' bf16 pairs copied into [pairs][32][2] panels of
 * BF16_PANEL_DEPTH inputs (32 KB: L1) and the 8x32 vdpbf16ps micro-kernel of
 * gemm_packed over every 8-row slice of x. The weights are used as stored, so
 * the only rounding is x's (relative 2^-9 per element). ---- */

#define BF16_PRODUCT_MIN_ROWS 16
#define BF16_PANEL_DEPTH 512 /* inputs per panel chunk (even) */


/* Panel chunk [k0, k0 + kc) of output rows [j0, j0 + columns) (zeros past
 * the matrix's rows and past k). */
static void pack_bf16_pairs(const g3n_matrix *w, int64_t j0, int64_t columns, int64_t k0, int64_t kc, uint32_t *panel)
{
    const int64_t k = w->cols, pairs = kc / 2;
    for (int c = 0; c < G3N_GEMM_PANEL; c++) {
        if (c >= columns) {
            for (int64_t p = 0; p < pairs; p++)
                panel[p * G3N_GEMM_PANEL + c] = 0;
            continue;
        }
        const uint16_t *row = (const uint16_t *)row_pointer(w, j0 + c) + k0;
        const int64_t whole = (k - k0) / 2 < pairs ? (k - k0) / 2 : pairs;
        for (int64_t p = 0; p < whole; p++) {
            uint32_t pair;
            memcpy(&pair, row + 2 * p, sizeof pair);
            panel[p * G3N_GEMM_PANEL + c] = pair;
        }
        for (int64_t p = whole; p < pairs; p++) /* an odd k's last input, padded with zero */
            panel[p * G3N_GEMM_PANEL + c] = k0 + 2 * p < k ? row[2 * p] : 0;
    }
}

/* 1 when done; 0 when the row buffer could not grow (the caller takes the f32 path). */
static int matmul_bf16_products(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                                size_t y_stride)
{
    const int64_t n = w->rows, k = w->cols, depth = (k + 1) & ~(int64_t)1;
    const size_t need = sizeof(uint16_t) * (size_t)m * (size_t)depth;
    if (need > thread_bf16_capacity) {
        own_thread_buffers();
        g3n_aligned_free(thread_bf16_rows);
        thread_bf16_rows = g3n_aligned_alloc(need);
        thread_bf16_capacity = thread_bf16_rows ? need : 0;
        if (!thread_bf16_rows)
            return 0;
    }
    uint16_t *rows = thread_bf16_rows;
    const int64_t panels = (n + G3N_GEMM_PANEL - 1) / G3N_GEMM_PANEL;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < m; i++)
            g3n_gemm_rows_to_bf16_avx512(x + (size_t)i * x_stride, 1, x_stride, k, rows + (size_t)i * (size_t)depth,
                                         depth);
        uint32_t *panel = g3n_aligned_alloc(sizeof(uint32_t) * BF16_PANEL_DEPTH / 2 * G3N_GEMM_PANEL);
        failed = !panel;
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < panels; p++) {
            if (!panel)
                continue;
            const int64_t j0 = p * G3N_GEMM_PANEL;
            const int columns = (int)(n - j0 < G3N_GEMM_PANEL ? n - j0 : G3N_GEMM_PANEL);
            for (int64_t k0 = 0; k0 < depth; k0 += BF16_PANEL_DEPTH) {
                const int64_t kc = depth - k0 < BF16_PANEL_DEPTH ? depth - k0 : BF16_PANEL_DEPTH;
                pack_bf16_pairs(w, j0, columns, k0, kc, panel);
                for (int64_t i = 0; i < m; i += G3N_GEMM_PACKED_MR) {
                    const int r = (int)(m - i < G3N_GEMM_PACKED_MR ? m - i : G3N_GEMM_PACKED_MR);
                    g3n_gemm_kernel_bf16_dot_avx512(rows + (size_t)i * (size_t)depth + k0, (size_t)depth, r, panel, kc,
                                                    y + (size_t)i * y_stride + (size_t)j0, y_stride, columns, k0 > 0);
                }
            }
        }
        g3n_aligned_free(panel);
    }
    return !failed;
}

void g3n_matmul(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y, size_t y_stride)
{
    if (m <= 0 || w->rows <= 0)
        return;
    if (w->cols == 0) {
        for (int64_t i = 0; i < m; i++)
            memset(y + (size_t)i * y_stride, 0, sizeof(float) * (size_t)w->rows);
        return;
    }
    const g3n_matrix_format *format = format_of(w);
    if (format->quantised) {
        matmul_quant(x, m, x_stride, w, y, y_stride);
        return;
    }
    const g3n_matrix_kernels *kernels = g3n_matrix_format_kernels(format);
    if (kernels->bf16_products && w->bf16_products && m >= BF16_PRODUCT_MIN_ROWS &&
        matmul_bf16_products(x, m, x_stride, w, y, y_stride))
        return;
    if (kernels->gemm && m >= 12)
        matmul_gemm(kernels->gemm, kernels->gemm_panel, x, m, x_stride, w, y, y_stride);
    else if (kernels->dot)
        matmul_dot(kernels->dot, x, m, x_stride, w, y, y_stride);
    else
        matmul_portable(x, m, x_stride, w, y, y_stride);
}
