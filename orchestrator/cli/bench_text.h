/* bench_text.h - `g3n bench text` (bench_text.c): the language model's
 * prefill and decode speed on a checkpoint folder, dispatched from
 * cmd_bench.c. argv[0] is "text". */
#ifndef G3N_BENCH_TEXT_H
#define G3N_BENCH_TEXT_H

int g3n_bench_text(int argc, char **argv);

#endif
