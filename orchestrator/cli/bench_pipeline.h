/* bench_pipeline.h - `g3n bench pipeline` (bench_pipeline.c), dispatched from
 * cmd_bench.c: greedy decode tokens/s through the orchestrator's pipeline
 * (g3n_pipeline_generate: embedder then decoder, one request each per step)
 * with the two roles as threads of this process over inproc://, and as the
 * separate daemon executables (g3n-embedder, g3n-decoder) over TCP on
 * 127.0.0.1, on the same weights, threads, prompt and token count. The
 * daemons are child processes of the benchmark: stopped (SIGTERM, waited for)
 * on every path, and sent SIGTERM by the kernel should the benchmark die.
 * argv[0] is "pipeline". Returns the exit code (0, 1 failure, 2 usage). */
#ifndef G3N_BENCH_PIPELINE_H
#define G3N_BENCH_PIPELINE_H

int g3n_bench_pipeline(int argc, char **argv);

#endif
