/* rogue_worker.h - workers whose answers are the fuzz input (fuzz_wire_replies,
 * fuzz_front_door): one per role, each answering every request with the next
 * piece of the input (pieces separated by "\n--g3n--\n", fuzz_util.h). A piece
 * that unpacks as an envelope, packs again into one that reads back, and is no
 * broker control body is sent as it is (partial ones first, while they say
 * partial, at most 64); any other piece becomes an Error reply; when the input
 * is used up every request gets an Error.
 *
 * The input is borrowed between g3n_rogue_input_set and g3n_rogue_input_clear
 * (libFuzzer's data lives for one LLVMFuzzerTestOneInput call). Thread-safe. */
#ifndef G3N_ROGUE_WORKER_H
#define G3N_ROGUE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "tokenizer.h"
#include "transport.h"

/* The replies from now on: pieces first_piece, first_piece + 1, ... of data. */
void g3n_rogue_input_set(const uint8_t *data, size_t size, int first_piece);
void g3n_rogue_input_clear(void);

/* The pipeline the harness drives: the demo model's config and the real tokenizer, a broker on an
 * inproc:// endpoint (no-worker wait 2 s, messages up to 8 MiB) and a rogue worker of every role joined
 * to it. Lives until the process ends. */
typedef struct g3n_rogue_pipeline {
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_transport_options transport;
    g3n_broker *broker;
    g3n_worker *workers[G3N_ROLE_COUNT];
} g3n_rogue_pipeline;
/* For LLVMFuzzerInitialize: a failure aborts with a message naming `harness`. */
void g3n_rogue_pipeline_start(g3n_rogue_pipeline *pipeline, const char *endpoint, const char *harness);

#endif
