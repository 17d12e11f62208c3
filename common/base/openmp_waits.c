/* openmp_waits.c - the short-spin default for libgomp's waits; see openmp_waits.h. */
#include "openmp_waits.h"

#include <stdlib.h>
#include <unistd.h>

void g3n_openmp_default_waits(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("G3N_OPENMP_KEEP"))
        return;
    /* ACTIVE only so that libgomp's throttled count (a process with more OpenMP threads than cores: the roles
     * as threads of g3n run / serve) is the same short spin, not 100 pauses: openmp_waits.h */
    if (setenv("GOMP_SPINCOUNT", G3N_OPENMP_SPIN_COUNT, 1) != 0 ||
        setenv("OMP_WAIT_POLICY", G3N_OPENMP_WAIT_POLICY, 1) != 0 || setenv("G3N_OPENMP_KEEP", "1", 1) != 0)
        return;
    /* the binary's own path (not /proc/self/exe itself: ps and top would then
     * name the process "exe") */
    char self[4096];
    const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (length > 0 && (size_t)length < sizeof(self) - 1) {
        self[length] = '\0';
        execv(self, argv);
    }
    /* exec failed (no /proc): go on with libgomp's defaults, and don't pass
     * the variables on to children as if they had been applied here */
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("G3N_OPENMP_KEEP");
}
