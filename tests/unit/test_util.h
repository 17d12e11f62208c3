/* test_util.h - helpers shared by the unit tests. */
#ifndef G3N_TEST_UTIL_H
#define G3N_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Path of a file under tests/fixtures (env G3N_FIXTURES, set by ctest; falls
 * back to tests/fixtures relative to the working directory). */
const char *g3n_test_fixture(const char *relative, char *buffer, size_t size);
/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp), into buffer. */
const char *g3n_test_temp_dir(char *buffer, size_t size);
/* Removes a directory tree made by the test. */
void g3n_test_remove_tree(const char *path);
/* Deterministic pseudo-random floats in [-1, 1). */
void g3n_test_random_floats(float *out, int64_t count, uint64_t seed);
/* Path of the g3n binary (env G3N_BINARY, set by ctest). */
const char *g3n_test_binary(void);

/* A text session layer hook (g3n_text_session_set_layer_hook) that copies the
 * streams after decoder layer 0 into data [num_streams][tokens][hidden] for
 * positions below tokens (the layout of the goldens' prefill_hidden.1). */
typedef struct g3n_test_layer_capture {
    float *data;
    int64_t tokens;
} g3n_test_layer_capture;
void g3n_test_capture_layer0(void *user, int layer, const float *streams, int num_streams, int64_t stream_stride,
                             int64_t first_position, int64_t count, int64_t hidden);

#endif
