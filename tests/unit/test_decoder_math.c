/* The vectorised tanh of the fast weight formats (services/decoder/text_math.h)
 * against libm: soft-capping and gelu within a few ulp over the whole range,
 * including the switch at |x| = 0.25, zeros, signs, huge values and tails
 * that are not a multiple of 16, on every ISA the host has. gelu is measured
 * against double precision. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "matmul.h"
#include "ops.h"
#include "text_math.h"

#define COUNT 20011

static void fill(float *x)
{
    for (int i = 0; i < COUNT; i++) {
        const double t = (double)i / (COUNT - 1);               /* 0 .. 1 */
        const double magnitude = i % 3 == 0 ? 60.0 * t * t * t : i % 3 == 1 ? 0.5 * t : 1e-4 * t;
        x[i] = (float)((i % 2 ? -1.0 : 1.0) * magnitude);
    }
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 0.25f;
    x[3] = -0.2499999f;
    x[4] = 1e30f;
    x[5] = -1e30f;
}

static void check_isa(g3n_isa isa)
{
    if (g3n_isa_set(isa) != isa) {
        print_message("  (this CPU lacks %s; skipped)\n", g3n_isa_name(isa));
        g3n_isa_set(g3n_isa_detect());
        skip();
    }
    float *x = malloc(sizeof(float) * COUNT), *y = malloc(sizeof(float) * COUNT);
    float *g = malloc(sizeof(float) * COUNT);
    fill(x);
    for (int i = 0; i < COUNT; i++)
        y[i] = x[i];
    const float cap = 30.0f;
    g3n_text_softcap(y, COUNT, cap);
    g3n_text_gelu_tanh(x, g, COUNT);
    double worst_cap = 0.0, worst_gelu = 0.0;
    for (int i = 0; i < COUNT; i++) {
        const double want = (double)tanhf(x[i] / cap) * cap;
        const double err = fabs(y[i] - want) / (fabs(want) + 1e-30);
        worst_cap = err > worst_cap ? err : worst_cap;
        if (fabs(want) > 0.0)
            assert_true(!!signbit(y[i]) == !!signbit(want));
        /* gelu against double precision; allowed: 1e-6 relative, the f32
         * rounding of u (relative error 2|u|·6e-8 where 1 + tanh(u) ~ 2·exp(2u)),
         * and libm's tanhf near -1 for the portable path (6e-8 of 1, times x/2) */
        const double xd = x[i];
        const double u = 0.7978845608028654 * (xd + 0.044715 * xd * xd * xd);
        const double want_gelu = isinf(u) ? (u > 0 ? xd : 0.0) : 0.5 * xd * (1.0 + tanh(u));
        const double allowed = 1e-6 * fabs(want_gelu) + 2e-7 * fabs(u) * fabs(want_gelu) + 3e-8 * fabs(xd);
        const double err_gelu = fabs(g[i] - want_gelu) / (allowed > 0.0 ? allowed : 1e-37) * 1e-6;
        worst_gelu = err_gelu > worst_gelu ? err_gelu : worst_gelu;
    }
    print_message("  isa %s: softcap max rel err %.3g, gelu max err %.3g of its allowance\n",
                  g3n_isa_name(g3n_isa_active()), worst_cap, worst_gelu * 1e6);
    assert_true(worst_cap <= 1e-6);
    assert_true(worst_gelu <= 1e-6);
    assert_true(y[0] == 0.0f);
    assert_true(y[4] == cap && y[5] == -cap);
    free(x);
    free(y);
    free(g);
    g3n_isa_set(g3n_isa_detect());
}

static void test_tanh_portable(void **state)
{
    (void)state;
    check_isa(G3N_ISA_PORTABLE);
}

static void test_tanh_avx2(void **state)
{
    (void)state;
    check_isa(G3N_ISA_AVX2);
}

static void test_tanh_avx512(void **state)
{
    (void)state;
    check_isa(G3N_ISA_AVX512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tanh_portable), cmocka_unit_test(test_tanh_avx2),
                                       cmocka_unit_test(test_tanh_avx512)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
