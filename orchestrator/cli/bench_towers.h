/* bench_towers.h - `g3n bench vision|audio|gemm` (bench_towers.c), dispatched
 * from cmd_bench.c. argv[0] is the benchmark name. */
#ifndef G3N_BENCH_TOWERS_H
#define G3N_BENCH_TOWERS_H

/* 1 if name is one of the tower benchmarks. */
int g3n_bench_towers_handles(const char *name);
int g3n_bench_towers(int argc, char **argv);

#endif
