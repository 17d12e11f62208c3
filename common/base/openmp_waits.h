/* openmp_waits.h - how long idle OpenMP threads spin before they sleep.
 *
 * libgomp's default lets a waiting thread spin for about 300,000 pauses
 * (milliseconds) before it sleeps in the kernel: on a host with free cores the
 * decoder's ~10 parallel regions per layer and token then cost nothing, but
 * when other processes want the cores a spinning thread takes the core the
 * thread it waits for needs (decode on a loaded host slows by an order of
 * magnitude). Passive waits (OMP_WAIT_POLICY=passive) sleep at once and pay a
 * futex wake-up per region, a sizeable share of decode on a quiet host.
 *
 * g3n's default is in between: a short spin (G3N_OPENMP_SPIN_COUNT pauses of
 * ~30 ns, about 20 microseconds: longer than most serial work between two
 * regions of a decode step, far shorter than a scheduler's time slice), then
 * sleep; the measurements behind it: docs/performance.md, "OpenMP waits".
 * libgomp reads GOMP_SPINCOUNT once, when it is loaded, before main: so the binaries
 * set it and re-execute themselves once, unless the user chose
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT (those are kept as given) or set
 * G3N_OPENMP_KEEP=1.
 *
 * With it they set OMP_WAIT_POLICY=ACTIVE: libgomp spins only a "throttled"
 * count in a process with more OpenMP threads than cores (the roles as threads
 * of g3n run / serve: each role thread has its own team), and that count is
 * 100 pauses unless the policy is ACTIVE (then min(1000, GOMP_SPINCOUNT)). At
 * 100 the in-process decoder slept between regions that the daemon's decoder
 * spun through and was slower per step than the daemon; with ACTIVE both run
 * alike (docs/performance.md). ACTIVE changes nothing else here:
 * GOMP_SPINCOUNT bounds the spin. */
#ifndef G3N_OPENMP_WAITS_H
#define G3N_OPENMP_WAITS_H

#define G3N_OPENMP_SPIN_COUNT "600"
#define G3N_OPENMP_WAIT_POLICY "ACTIVE"

/* Call first in main with main's argv. Returns only when no re-execution was
 * needed or it failed (then the process goes on with libgomp's defaults). */
void g3n_openmp_default_waits(char **argv);

#endif
