/* fuzz_util.h - what the libFuzzer harnesses share.
 *
 * Each harness is one program (tests/fuzz/fuzz_NAME.c) defining
 * LLVMFuzzerTestOneInput; scripts/fuzz.sh runs it on its seed corpus
 * (tests/fuzz/corpus/NAME) and replays its regressions (tests/fuzz/regressions/NAME).
 * A harness must never report a parser's clear error as a crash: only
 * sanitizer findings, hangs and leaks are failures. */
#ifndef G3N_FUZZ_UTIL_H
#define G3N_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* data[0..size) copied into a malloc'd NUL-terminated string (the caller frees). */
char *g3n_fuzz_string(const uint8_t *data, size_t size);

/* An anonymous in-memory file holding data; *path gets "/proc/self/fd/N".
 * Returns the fd (close it) or -1. */
int g3n_fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_size);

/* Writes data to path (truncating). 0 on success. */
int g3n_fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* A private scratch folder for this process (created on first use, removed at exit). */
const char *g3n_fuzz_scratch_dir(void);

/* Reads every byte of buf (so ASan sees an out-of-range view) and returns a checksum. */
uint64_t g3n_fuzz_touch(const void *buf, size_t size);

/* Splits the input at each "\n--g3n--\n": the k-th piece (0-based) in *piece and *piece_size;
 * 0 if there is no such piece. */
int g3n_fuzz_piece(const uint8_t *data, size_t size, int k, const uint8_t **piece, size_t *piece_size);

#endif
