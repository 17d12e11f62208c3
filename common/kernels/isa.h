/* isa.h - the instruction-set level the kernels run at, chosen once.
 *
 * At the first call of g3n_isa_active() the CPU's features are read and the
 * G3N_ISA environment variable ("portable", "avx2", "avx512") caps the level;
 * every module with vector kernels then holds one table of function pointers
 * per level (see matrix_format.c, gemm_packed.c, the services' *_ops.c) and
 * indexes it with the active level, so the choice is made in one place and
 * a new level is one more table row beside its *_<isa>.c file.
 */
#ifndef G3N_ISA_H
#define G3N_ISA_H

/* Instruction-set level of the kernels (ordered: a level includes those below). */
typedef enum g3n_isa { G3N_ISA_PORTABLE = 0, G3N_ISA_AVX2 = 1, G3N_ISA_AVX512 = 2, G3N_ISA_COUNT } g3n_isa;

/* The best level this CPU supports: AVX-512 needs F, BW, VL, DQ, BF16 and
 * VNNI; AVX2 needs FMA and F16C. */
g3n_isa g3n_isa_detect(void);
/* Level in use (default: detected; G3N_ISA env var "portable|avx2|avx512" caps it). */
g3n_isa g3n_isa_active(void);
/* Forces a level (capped by what the CPU supports); for tests and benchmarks. */
g3n_isa g3n_isa_set(g3n_isa isa);
/* "portable", "avx2", "avx512". */
const char *g3n_isa_name(g3n_isa isa);

#endif
