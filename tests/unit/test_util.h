/* test_util.h - helpers shared by the unit tests. */
#ifndef G3N_TEST_UTIL_H
#define G3N_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "config.h"
#include "front_door.h"
#include "http_server.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"

/* Path of a file under tests/fixtures (env G3N_FIXTURES, set by ctest; falls
 * back to tests/fixtures relative to the working directory). */
const char *g3n_test_fixture(const char *relative, char *buffer, size_t size);
/* Opens the fixture case tests/fixtures/NAME (g3n_check_case_open with the fixtures folder) and, when
 * seed is not NULL, reads its synthetic weights' seed. A failure fails the test, naming the case. */
void g3n_test_case_open(g3n_check_case *c, const char *name, uint64_t *seed);
/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp), into buffer. */
const char *g3n_test_temp_dir(char *buffer, size_t size);
/* Removes a directory tree made by the test. */
void g3n_test_remove_tree(const char *path);
/* Deterministic pseudo-random floats in [-1, 1). */
void g3n_test_random_floats(float *out, int64_t count, uint64_t seed);
/* A 16 kHz mono int16 WAV of `samples` samples (a tone with noise drawn from seed), malloc'd. */
uint8_t *g3n_test_make_wav(int64_t samples, uint64_t seed, size_t *size);
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

/* The pipeline of `g3n run` / `g3n serve` in this process, for tests: scripts/demo-config.json, the fixture
 * tokenizer, a broker on the inproc:// endpoint, and the roles of role_mask (1u << G3N_ROLE_..., 0: none)
 * as threads on synthetic bf16 weights of seed (loaded only when roles are asked for), each role's worker
 * connected before it returns. transport NULL: the defaults with insecure = 1 (a tcp:// front door or
 * client without keys). A failure fails the test. */
typedef struct g3n_test_stack {
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_weights *weights;
    g3n_broker *broker;
    g3n_local_roles local;
} g3n_test_stack;
void g3n_test_stack_open(g3n_test_stack *stack, const char *endpoint, const g3n_transport_options *transport,
                         unsigned role_mask, uint64_t seed);
/* The same with the roles' options (NULL: threads = 1, the rest defaults). */
void g3n_test_stack_open_with(g3n_test_stack *stack, const char *endpoint, const g3n_transport_options *transport,
                              const g3n_role_options *roles, unsigned role_mask, uint64_t seed);
void g3n_test_stack_close(g3n_test_stack *stack);
/* An HTTP server over the stack's broker: options NULL = the defaults; port 0 (any free one) and quiet are
 * set either way. *port gets its port. */
g3n_http_server *g3n_test_http_start(g3n_test_stack *stack, const g3n_http_options *options, int *port);

/* The orchestrator's front door over the stack's broker on a free loopback tcp:// port (its endpoint
 * into endpoint[size]), with the default options. */
g3n_front_door *g3n_test_front_door_start(g3n_test_stack *stack, char *endpoint, size_t size);

/* A free loopback TCP port (bound then released). */
int g3n_test_free_port(void);
/* One HTTP/1.1 request over a fresh loopback connection to port: the status (-1: no answer), the whole
 * response NUL-terminated in out (its length in *length when not NULL). */
int g3n_test_http_request(int port, const char *request, char *out, size_t size, size_t *length);
/* METHOD path with no body (Connection: close) through g3n_test_http_request; get: GET. */
int g3n_test_http_method(int port, const char *method, const char *path, char *out, size_t size, size_t *length);
int g3n_test_http_get(int port, const char *path, char *out, size_t size);
/* POST path with a JSON body (Connection: close) through g3n_test_http_request. */
int g3n_test_http_post(int port, const char *path, const char *body, char *out, size_t size);

#endif
