/* openmp_waits.h - how long idle OpenMP threads spin before they sleep.
 *
 * libgomp's default lets a waiting thread spin for about 300,000 pauses
 * (milliseconds) before it sleeps in the kernel: on a host with free cores the
 * decoder's ~10 parallel regions per layer and token then cost nothing, but
 * when other processes want the cores a spinning thread takes the core the
 * thread it waits for needs (E2B q4 decode on a loaded 2-core host: 0.45
 * tok/s spinning vs 7.9 tok/s with passive waits). Passive waits
 * (OMP_WAIT_POLICY=passive) sleep at once and pay a futex wake-up per region:
 * about 25 % of decode speed on a quiet host.
 *
 * g3n's default is in between: a short spin (G3N_OPENMP_SPIN_COUNT pauses of
 * ~30 ns, about 20 microseconds: longer than most serial work between two
 * regions of a decode step, far shorter than a scheduler's time slice), then
 * sleep. E2B q4 decode, 2 threads, interleaved runs: quiet host passive 19.5 /
 * 600 20.4 / 2000 20.1 / 300000 (libgomp's) 19.3 tok/s; load 6: 6.3-7.2 /
 * 5.8-6.4 / 5.5-5.6 / 0.5-1.0. libgomp
 * reads GOMP_SPINCOUNT once, when it is loaded, before main: so the binaries
 * set it and re-execute themselves once, unless the user chose
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT (those are kept as given) or set
 * G3N_OPENMP_KEEP=1.
 *
 * With it they set OMP_WAIT_POLICY=ACTIVE: libgomp spins only a "throttled"
 * count in a process with more OpenMP threads than cores (the roles as threads
 * of g3n run / serve: each role thread has its own team), and that count is
 * 100 pauses unless the policy is ACTIVE (then min(1000, GOMP_SPINCOUNT)). At
 * 100 the in-process decoder slept between regions that the daemon's decoder
 * spun through: E2B q4 through the pipeline, decoder's own time per step
 * 50.6 ms in-process vs 46.3 ms as a daemon (CPU share 0.81 vs 0.85); with
 * ACTIVE + 600: 42.2 vs 41.9 ms (0.88 both), and g3n run's decode 23.6 -> 24.1
 * tok/s. ACTIVE changes nothing else here: GOMP_SPINCOUNT bounds the spin. */
#ifndef G3N_OPENMP_WAITS_H
#define G3N_OPENMP_WAITS_H

#define G3N_OPENMP_SPIN_COUNT "600"
#define G3N_OPENMP_WAIT_POLICY "ACTIVE"

/* Call first in main with main's argv. Returns only when no re-execution was
 * needed or it failed (then the process goes on with libgomp's defaults). */
void g3n_openmp_default_waits(char **argv);

#endif
