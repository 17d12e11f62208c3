/* decoder_role.h - the decoder role (common/role/role.h): PrefillRequest /
 * DecodeStepRequest / EndSession over named sessions that keep their KV cache
 * on this worker (the session table: bounded by count, memory and an idle
 * timeout, least recently used evicted first), computed on one engine thread
 * of its own: a prefill at a time, and the decode steps of different sessions
 * that are pending together as one batched step - continuous batching,
 * g3n_text_batch_forward - so a worker with capacity N (handler threads)
 * serves up to N sessions' steps per forward. */
#ifndef G3N_DECODER_ROLE_H
#define G3N_DECODER_ROLE_H

#include <stdint.h>

#include "role.h"

extern const g3n_role_ops g3n_decoder_role_ops;

/* How its decode steps were grouped (continuous batching). */
typedef struct g3n_role_decoder_stats {
    uint64_t decode_steps;   /* one-position steps computed */
    uint64_t decode_batches; /* forwards that computed them (a lone step is a batch of one) */
    uint64_t batched_steps;  /* steps that shared their forward with another session's */
    uint64_t largest_batch;
} g3n_role_decoder_stats;
/* role: a decoder role (g3n_decoder_role_ops); all zero for another role. */
g3n_role_decoder_stats g3n_role_decoder_stats_get(g3n_role *role);

#endif
