/* bench_util.h - what the `g3n bench` commands (cmd_bench.c, bench_towers.c,
 * bench_pipeline.c) share to measure on a shared host: the process's CPU
 * time, the load average, and the median of a set of runs. */
#ifndef G3N_BENCH_UTIL_H
#define G3N_BENCH_UTIL_H

/* User + system CPU seconds of this process so far (all its threads); 0 when
 * getrusage fails. */
double g3n_bench_process_cpu_seconds(void);

/* The 1-minute load average (/proc/loadavg); -1 when it cannot be read. */
double g3n_bench_load_average(void);

/* Sorts values[0..count) ascending in place and returns their median (the
 * mean of the two middle ones for an even count); *min and *max, where not
 * NULL, get the least and the greatest. count >= 1. */
double g3n_bench_median(double *values, int count, double *min, double *max);

#endif
