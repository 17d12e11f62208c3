/* g3n_openmp_default_waits: a process started without OpenMP wait settings
 * re-executes itself once with GOMP_SPINCOUNT = G3N_OPENMP_SPIN_COUNT and
 * OMP_WAIT_POLICY = G3N_OPENMP_WAIT_POLICY (libgomp then reads them); a second call does not loop; a user's
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept as given. This program runs the
 * first step itself: it clears the variables and calls the function, which
 * re-executes it; the cmocka tests run in the re-executed process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "openmp_waits.h"

static char **program_argv;

static void test_reexecuted_with_short_spin(void **state)
{
    (void)state;
    assert_non_null(getenv("G3N_TEST_OPENMP_STAGE")); /* we are the re-executed process */
    assert_non_null(getenv("GOMP_SPINCOUNT"));
    assert_string_equal(getenv("GOMP_SPINCOUNT"), G3N_OPENMP_SPIN_COUNT);
    assert_non_null(getenv("OMP_WAIT_POLICY")); /* (libgomp's throttled spin count follows it) */
    assert_string_equal(getenv("OMP_WAIT_POLICY"), G3N_OPENMP_WAIT_POLICY);
    assert_non_null(getenv("G3N_OPENMP_KEEP"));
    g3n_openmp_default_waits(program_argv); /* returns: no second re-execution */
    assert_string_equal(getenv("GOMP_SPINCOUNT"), G3N_OPENMP_SPIN_COUNT);
    assert_string_equal(getenv("OMP_WAIT_POLICY"), G3N_OPENMP_WAIT_POLICY);
}

static void test_user_choice_is_kept(void **state)
{
    (void)state;
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("G3N_OPENMP_KEEP");
    unsetenv("OMP_WAIT_POLICY");
    setenv("OMP_WAIT_POLICY", "passive", 1);
    g3n_openmp_default_waits(program_argv); /* returns at once */
    assert_null(getenv("GOMP_SPINCOUNT"));
    assert_string_equal(getenv("OMP_WAIT_POLICY"), "passive");
    unsetenv("OMP_WAIT_POLICY");
    setenv("GOMP_SPINCOUNT", "123", 1);
    g3n_openmp_default_waits(program_argv);
    assert_string_equal(getenv("GOMP_SPINCOUNT"), "123");
}

int main(int argc, char **argv)
{
    (void)argc;
    program_argv = argv;
    if (!getenv("G3N_TEST_OPENMP_STAGE")) {
        setenv("G3N_TEST_OPENMP_STAGE", "1", 1);
        unsetenv("OMP_WAIT_POLICY");
        unsetenv("GOMP_SPINCOUNT");
        unsetenv("G3N_OPENMP_KEEP");
        g3n_openmp_default_waits(argv);
        fprintf(stderr, "g3n_openmp_default_waits returned instead of re-executing this program\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reexecuted_with_short_spin),
                                       cmocka_unit_test(test_user_choice_is_kept)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
