/* openmp_waits.c - the short-spin default for libgomp's waits; see openmp_waits.h. */
#include "openmp_waits.h"

#include <stdlib.h>
#include <unistd.h>

void g3n_openmp_default_waits(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("G3N_OPENMP_KEEP"))
        return;
    if (setenv("GOMP_SPINCOUNT", G3N_OPENMP_SPIN_COUNT, 1) != 0 || setenv("G3N_OPENMP_KEEP", "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): go on with libgomp's defaults, and don't pass
     * the variables on to children as if they had been applied here */
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("G3N_OPENMP_KEEP");
}
