/* gemm_packed_avx2.c - the micro-kernels of g3n_gemm_packed (gemm_packed.h)
 * for CPUs with AVX2 + FMA but no AVX-512, on the same panels as the AVX-512
 * kernels (gemm_packed_avx512.c); called only after g3n_isa_active() >= AVX2.
 *
 * Each call computes y[r][0..columns) (+)= x[r] · panel for r < rows (<= 8),
 * as passes over the panel that fit AVX2's 16 ymm registers:
 *   f32:        4 rows x 16 columns per pass (8 accumulators), f32 FMAs.
 *   bf16_widen: the same on bf16 pairs widened exactly to f32 (the exact path
 *               on bf16 weights, and the bf16 precision here: AVX2 has no bf16
 *               dot product, so x stays f32 and only the weights are bf16).
 *   int8:       the AVX-512 int8 scheme's integer sums exactly, so the results
 *               are bit for bit those of the VNNI kernel: x u8 (quantised + 128),
 *               int8 panel [quads][32][4], y = sx * sw * Σ x w.
 *                - AVX-VNNI (Alder Lake and later, Zen 5): vpdpbusd on ymm, the
 *                  AVX-512 kernel's instruction at half the width; 3 rows x 32
 *                  columns per pass (12 accumulators).
 *                - plain AVX2: vpmaddubsw(|x|, sign(w, x)) then vpmaddwd by ones:
 *                  with |x|, |w| <= 127 a pair sums to at most 2 * 127 * 127 =
 *                  32258, so the int16 step never saturates (with x + 128 it
 *                  would); 2 rows x 32 columns per pass.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_packed_internal.h"
#include "simd_exp_avx2.h"

/* Stores (or adds into y) one row's 16 columns, of which `columns` are real (> 0). */
static inline __attribute__((always_inline)) void store16(float *y, __m256 v0, __m256 v1, int columns, int accumulate)
{
    if (columns >= 16) {
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(y));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(y + 8));
        }
        _mm256_storeu_ps(y, v0);
        _mm256_storeu_ps(y + 8, v1);
        return;
    }
    const __m256i m0 = g3n_lanes_avx2(columns), m1 = g3n_lanes_avx2(columns - 8);
    if (accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(y, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(y + 8, m1));
    }
    _mm256_maskstore_ps(y, m0, v0);
    _mm256_maskstore_ps(y + 8, m1, v1);
}

/* The 4 row pointers of the pass at row r0 (rows beyond `rows` repeat the last one and are not stored). */
#define PASS_ROWS(type, x, x_stride, r0, rows)                                                                       \
    const type *x0 = x + (size_t)(r0) * x_stride;                                                                   \
    const type *x1 = (r0) + 1 < rows ? x0 + x_stride : x0;                                                         \
    const type *x2 = (r0) + 2 < rows ? x1 + x_stride : x1;                                                         \
    const type *x3 = (r0) + 3 < rows ? x2 + x_stride : x2

#define FMA4(i, b0, b1)                                                                                              \
    do {                                                                                                             \
        __m256 a = _mm256_broadcast_ss(x0 + (i));                                                                    \
        c0 = _mm256_fmadd_ps(a, b0, c0);                                                                             \
        c1 = _mm256_fmadd_ps(a, b1, c1);                                                                             \
        a = _mm256_broadcast_ss(x1 + (i));                                                                           \
        c2 = _mm256_fmadd_ps(a, b0, c2);                                                                             \
        c3 = _mm256_fmadd_ps(a, b1, c3);                                                                             \
        a = _mm256_broadcast_ss(x2 + (i));                                                                           \
        c4 = _mm256_fmadd_ps(a, b0, c4);                                                                             \
        c5 = _mm256_fmadd_ps(a, b1, c5);                                                                             \
        a = _mm256_broadcast_ss(x3 + (i));                                                                           \
        c6 = _mm256_fmadd_ps(a, b0, c6);                                                                             \
        c7 = _mm256_fmadd_ps(a, b1, c7);                                                                             \
    } while (0)

#define DECLARE8                                                                                                     \
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps(),  \
           c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps(), c6 = _mm256_setzero_ps(), c7 = _mm256_setzero_ps()

#define STORE8(y, y_stride, r0, rows, columns, accumulate)                                                           \
    do {                                                                                                             \
        const __m256 c[8] = {c0, c1, c2, c3, c4, c5, c6, c7};                                                        \
        for (int r = 0; r < 4 && (r0) + r < rows; r++)                                                               \
            store16(y + (size_t)((r0) + r) * y_stride, c[2 * r], c[2 * r + 1], columns, accumulate);                 \
    } while (0)

void g3n_gemm_kernel_f32_avx2(const void *x_any, size_t x_stride, int rows, const void *panel_any, int64_t kc,
                              float *y, size_t y_stride, int columns, int accumulate)
{
    const float *x = x_any;
    for (int half = 0; half < 2 && columns > 16 * half; half++) {
        const float *panel = (const float *)panel_any + 16 * half;
        for (int r0 = 0; r0 < rows; r0 += 4) {
            PASS_ROWS(float, x, x_stride, r0, rows);
            DECLARE8;
            for (int64_t kk = 0; kk < kc; kk++) {
                const __m256 b0 = _mm256_load_ps(panel + kk * 32), b1 = _mm256_load_ps(panel + kk * 32 + 8);
                FMA4(kk, b0, b1);
            }
            STORE8(y + 16 * half, y_stride, r0, rows, columns - 16 * half, accumulate);
        }
    }
}

void g3n_gemm_kernel_bf16_widen_avx2(const void *x_any, size_t x_stride, int rows, const void *panel_any, int64_t kc,
                                     float *y, size_t y_stride, int columns, int accumulate)
{
    const float *x = x_any;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    /* input k of a pair (its low half) moved to the high half with vpshufb rather than vpslld: the shuffle
     * runs on a port the FMAs do not use on Intel cores (vpslld competes with them: -25 %) */
    const __m256i low_up = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 4, 5, -1, -1, 8, 9, -1, -1, 12, 13, -1, -1, 0, 1, -1,
                                            -1, 4, 5, -1, -1, 8, 9, -1, -1, 12, 13);
    for (int half = 0; half < 2 && columns > 16 * half; half++) {
        const uint16_t *panel = (const uint16_t *)panel_any + 32 * half; /* 16 columns x 2 inputs */
        for (int r0 = 0; r0 < rows; r0 += 4) {
            PASS_ROWS(float, x, x_stride, r0, rows);
            DECLARE8;
            int64_t kk = 0;
            for (; kk + 2 <= kc; kk += 2) {
                const __m256i p0 = _mm256_load_si256((const __m256i *)(panel + kk * 32));
                const __m256i p1 = _mm256_load_si256((const __m256i *)(panel + kk * 32 + 16));
                const __m256 e0 = _mm256_castsi256_ps(_mm256_shuffle_epi8(p0, low_up));
                const __m256 e1 = _mm256_castsi256_ps(_mm256_shuffle_epi8(p1, low_up));
                FMA4(kk, e0, e1);
                const __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(p0, high));
                const __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(p1, high));
                FMA4(kk + 1, o0, o1);
            }
            if (kk < kc) { /* odd k: the last pair's second input is padding */
                const __m256i p0 = _mm256_load_si256((const __m256i *)(panel + kk * 32));
                const __m256i p1 = _mm256_load_si256((const __m256i *)(panel + kk * 32 + 16));
                const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(p0, 16));
                const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(p1, 16));
                FMA4(kk, e0, e1);
            }
            STORE8(y + 16 * half, y_stride, r0, rows, columns - 16 * half, accumulate);
        }
    }
}

/* ---- int8 ---- */

/* out[r][0..depth) = round(x[r][k] / scale[r]) + 128 (128 beyond k), scale = max|x[r]| / 127: the
 * AVX-512 quantiser's operations in the same order (bit for bit the same bytes and scales). */
void g3n_gemm_rows_to_u8_avx2(const float *x, int64_t rows, size_t x_stride, int64_t k, uint8_t *out, int64_t depth,
                              float *scale)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * x_stride;
        uint8_t *dst = out + r * depth;
        __m256 vmax = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= k; i += 8)
            vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + i)));
        if (i < k)
            vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_maskload_ps(src + i, g3n_lanes_avx2(k - i))));
        const float max = g3n_max_avx2(vmax);
        scale[r] = max > 0.0f ? max / 127.0f : 1.0f;
        const __m256 inverse = _mm256_set1_ps(max > 0.0f ? 127.0f / max : 0.0f);
        /* 32 at a time: int32 -> int16 -> int8 with saturation (so only -128 needs the clamp to -127),
         * lanes put back in order, + 128 as a flip of the sign bit; the tail as the AVX-512 one */
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), low = _mm256_set1_epi8(-127);
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (i = 0; i + 32 <= k; i += 32) {
            const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + i), inverse));
            const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + i + 8), inverse));
            const __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + i + 16), inverse));
            const __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + i + 24), inverse));
            __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
            b = _mm256_permutevar8x32_epi32(_mm256_max_epi8(b, low), order);
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(b, flip));
        }
        for (; i < k; i++) {
            const float v = src[i] * (max > 0.0f ? 127.0f / max : 0.0f);
            const __m128i q = _mm_cvtps_epi32(_mm_set_ss(v)); /* (the vector conversion's rounding: to nearest even) */
            int32_t n = _mm_cvtsi128_si32(q);
            n = n > 127 ? 127 : n < -127 ? -127 : n;
            dst[i] = (uint8_t)(n + 128);
        }
        for (i = k; i < depth; i++)
            dst[i] = 128;
    }
}

static inline __m256i broadcast_quad(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* Quads of inputs per K block of the int8 kernels: a 32-column panel block of
 * 16 KB stays in L1 while every pass over the rows reuses it (without blocks a
 * K = 6144 panel of 192 KB came from L2 once per pass: L2-bound). Partial sums
 * wait in a small int32 block between K blocks (exact: the same integers). */
#define I8_BLOCK_QUADS 128

/* Partial sums of up to 9 rows (3 passes of 3) x 32 columns. */
typedef struct i8_partial {
    int32_t v[9][32] __attribute__((aligned(32)));
} i8_partial;

static inline __m256i partial_load(const i8_partial *p, int r, int j, int first)
{
    return first ? _mm256_setzero_si256() : _mm256_load_si256((const __m256i *)&p->v[r][8 * j]);
}

/* y rows = x_scale * w_scale * float(Σ x w - offset), from the partial sums (offset: 128 * Σ w per column with u8
 * x, or none). */
static void store_i8_rows(const i8_partial *p, int rows, const float *x_scale, const float *w_scale,
                          const int32_t *w_sum, float *y, size_t y_stride, int columns)
{
    for (int j = 0; j < 4 && 8 * j < columns; j++) {
        const __m256i m = g3n_lanes_avx2(columns - 8 * j);
        const __m256 ws = _mm256_maskload_ps(w_scale + 8 * j, m);
        const __m256i offset = w_sum ? _mm256_slli_epi32(_mm256_maskload_epi32(w_sum + 8 * j, m), 7)
                                     : _mm256_setzero_si256();
        for (int r = 0; r < rows; r++) {
            const __m256i exact = _mm256_sub_epi32(_mm256_load_si256((const __m256i *)&p->v[r][8 * j]), offset);
            const __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(exact), ws), _mm256_set1_ps(x_scale[r]));
            _mm256_maskstore_ps(y + (size_t)r * y_stride + 8 * j, m, v);
        }
    }
}

/* Plain AVX2: 2 rows x 32 columns per pass; x as int8 (u8 ^ 0x80), no offset to remove. */
static void i8_kernel_madd(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads,
                           const float *x_scale, const float *w_scale, float *y, size_t y_stride, int columns)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    i8_partial partial;
    for (int64_t q0 = 0; q0 < quads; q0 += I8_BLOCK_QUADS) {
        const int64_t q1 = quads - q0 < I8_BLOCK_QUADS ? quads : q0 + I8_BLOCK_QUADS;
        for (int r0 = 0; r0 < rows; r0 += 2) {
            const uint8_t *xa = x + (size_t)r0 * x_stride, *xb = r0 + 1 < rows ? xa + x_stride : xa;
            __m256i a0 = partial_load(&partial, r0, 0, q0 == 0), a1 = partial_load(&partial, r0, 1, q0 == 0),
                    a2 = partial_load(&partial, r0, 2, q0 == 0), a3 = partial_load(&partial, r0, 3, q0 == 0),
                    b0 = partial_load(&partial, r0 + 1, 0, q0 == 0), b1 = partial_load(&partial, r0 + 1, 1, q0 == 0),
                    b2 = partial_load(&partial, r0 + 1, 2, q0 == 0), b3 = partial_load(&partial, r0 + 1, 3, q0 == 0);
            for (int64_t q = q0; q < q1; q++) {
                const __m256i w0 = _mm256_load_si256((const __m256i *)(panel + q * 128));
                const __m256i w1 = _mm256_load_si256((const __m256i *)(panel + q * 128 + 32));
                const __m256i w2 = _mm256_load_si256((const __m256i *)(panel + q * 128 + 64));
                const __m256i w3 = _mm256_load_si256((const __m256i *)(panel + q * 128 + 96));
                __m256i s = _mm256_xor_si256(broadcast_quad(xa + 4 * q), flip); /* x as int8, |x| <= 127 */
                __m256i m = _mm256_abs_epi8(s);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w0, s)), ones));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w1, s)), ones));
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w2, s)), ones));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w3, s)), ones));
                s = _mm256_xor_si256(broadcast_quad(xb + 4 * q), flip);
                m = _mm256_abs_epi8(s);
                b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w0, s)), ones));
                b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w1, s)), ones));
                b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w2, s)), ones));
                b3 = _mm256_add_epi32(b3, _mm256_madd_epi16(_mm256_maddubs_epi16(m, _mm256_sign_epi8(w3, s)), ones));
            }
            _mm256_store_si256((__m256i *)&partial.v[r0][0], a0);
            _mm256_store_si256((__m256i *)&partial.v[r0][8], a1);
            _mm256_store_si256((__m256i *)&partial.v[r0][16], a2);
            _mm256_store_si256((__m256i *)&partial.v[r0][24], a3);
            _mm256_store_si256((__m256i *)&partial.v[r0 + 1][0], b0);
            _mm256_store_si256((__m256i *)&partial.v[r0 + 1][8], b1);
            _mm256_store_si256((__m256i *)&partial.v[r0 + 1][16], b2);
            _mm256_store_si256((__m256i *)&partial.v[r0 + 1][24], b3);
        }
    }
    store_i8_rows(&partial, rows, x_scale, w_scale, NULL, y, y_stride, columns);
}

/* AVX-VNNI: 3 rows x 32 columns per pass (12 accumulators), weights as memory operands; u8 x. */
#define DPBUSD(acc, a, offset) acc = _mm256_dpbusd_avx_epi32(acc, a, _mm256_load_si256((const __m256i *)(w + offset)))
#define STORE_PARTIAL(r, c0, c1, c2, c3)                                                                              \
    do {                                                                                                             \
        _mm256_store_si256((__m256i *)&partial.v[r][0], c0);                                                          \
        _mm256_store_si256((__m256i *)&partial.v[r][8], c1);                                                          \
        _mm256_store_si256((__m256i *)&partial.v[r][16], c2);                                                         \
        _mm256_store_si256((__m256i *)&partial.v[r][24], c3);                                                         \
    } while (0)
__attribute__((target("avx2,fma,avxvnni"))) static void
i8_kernel_vnni(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads, const float *x_scale,
               const float *w_scale, const int32_t *w_sum, float *y, size_t y_stride, int columns)
{
    i8_partial partial;
    for (int64_t q0 = 0; q0 < quads; q0 += I8_BLOCK_QUADS) {
        const int64_t q1 = quads - q0 < I8_BLOCK_QUADS ? quads : q0 + I8_BLOCK_QUADS;
        const int first = q0 == 0;
        for (int r0 = 0; r0 < rows; r0 += 3) {
            const uint8_t *xa = x + (size_t)r0 * x_stride, *xb = r0 + 1 < rows ? xa + x_stride : xa,
                          *xc = r0 + 2 < rows ? xb + x_stride : xb;
            __m256i a0 = partial_load(&partial, r0, 0, first), a1 = partial_load(&partial, r0, 1, first),
                    a2 = partial_load(&partial, r0, 2, first), a3 = partial_load(&partial, r0, 3, first),
                    b0 = partial_load(&partial, r0 + 1, 0, first), b1 = partial_load(&partial, r0 + 1, 1, first),
                    b2 = partial_load(&partial, r0 + 1, 2, first), b3 = partial_load(&partial, r0 + 1, 3, first),
                    c0 = partial_load(&partial, r0 + 2, 0, first), c1 = partial_load(&partial, r0 + 2, 1, first),
                    c2 = partial_load(&partial, r0 + 2, 2, first), c3 = partial_load(&partial, r0 + 2, 3, first);
            for (int64_t q = q0; q < q1; q++) {
                const int8_t *w = panel + q * 128;
                __m256i s = broadcast_quad(xa + 4 * q);
                DPBUSD(a0, s, 0);
                DPBUSD(a1, s, 32);
                DPBUSD(a2, s, 64);
                DPBUSD(a3, s, 96);
                s = broadcast_quad(xb + 4 * q);
                DPBUSD(b0, s, 0);
                DPBUSD(b1, s, 32);
                DPBUSD(b2, s, 64);
                DPBUSD(b3, s, 96);
                s = broadcast_quad(xc + 4 * q);
                DPBUSD(c0, s, 0);
                DPBUSD(c1, s, 32);
                DPBUSD(c2, s, 64);
                DPBUSD(c3, s, 96);
            }
            STORE_PARTIAL(r0, a0, a1, a2, a3);
            STORE_PARTIAL(r0 + 1, b0, b1, b2, b3);
            STORE_PARTIAL(r0 + 2, c0, c1, c2, c3);
        }
    }
    store_i8_rows(&partial, rows, x_scale, w_scale, w_sum, y, y_stride, columns);
}
#undef DPBUSD
#undef STORE_PARTIAL

static int cpu_has_avx_vnni(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
}

/* AVX-VNNI: CPUID.(EAX=7, ECX=1):EAX[4]; env G3N_AVX_VNNI=0 turns it off (to measure the plain AVX2 kernel). */
static int vnni_choice = -1;

int g3n_gemm_avx_vnni_set(int on)
{
    const int have = on && cpu_has_avx_vnni();
    __atomic_store_n(&vnni_choice, have, __ATOMIC_RELAXED);
    return have;
}

int g3n_gemm_avx_vnni(void)
{
    int known = __atomic_load_n(&vnni_choice, __ATOMIC_RELAXED);
    if (known < 0) { /* (threads may race to fill it: they store the same value) */
        const char *env = getenv("G3N_AVX_VNNI");
        known = g3n_gemm_avx_vnni_set(!(env && strcmp(env, "0") == 0));
    }
    return known;
}

void g3n_gemm_kernel_i8_avx2(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads,
                             const float *x_scale, const float *w_scale, const int32_t *w_sum, float *y,
                             size_t y_stride, int columns)
{
    if (g3n_gemm_avx_vnni())
        i8_kernel_vnni(x, x_stride, rows, panel, quads, x_scale, w_scale, w_sum, y, y_stride, columns);
    else
        i8_kernel_madd(x, x_stride, rows, panel, quads, x_scale, w_scale, y, y_stride, columns);
}

void g3n_gemm_silu_block_avx2(float *y, size_t y_stride, int64_t rows, int columns)
{
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * y_stride;
        int c = 0;
        for (; c + 8 <= columns; c += 8) {
            const __m256 v = _mm256_loadu_ps(yr + c);
            _mm256_storeu_ps(yr + c, _mm256_mul_ps(v, g3n_sigmoid_avx2(v)));
        }
        if (c < columns) {
            const __m256i m = g3n_lanes_avx2(columns - c);
            const __m256 v = _mm256_maskload_ps(yr + c, m);
            _mm256_maskstore_ps(yr + c, m, _mm256_mul_ps(v, g3n_sigmoid_avx2(v)));
        }
    }
}
