/* roles.h - the four worker roles as transport handlers: what each daemon
 * (and each thread of `g3n run`) serves.
 *
 *   vision-encoder  EncodeImageRequest (image file bytes or pixel_values) ->
 *                   the vision tower's tokens [soft_tokens, vision_hidden]
 *   audio-encoder   EncodeAudioRequest (a clip in any format FFmpeg reads) ->
 *                   the audio tower's tokens [Ta, audio_hidden] + padding [Ta]
 *   embedder        EmbedRequest (ids + media tokens) -> inputs_embeds and
 *                   per-layer inputs (services/embedder/embedder.h: the merge)
 *   decoder         PrefillRequest / DecodeStepRequest / EndSession over
 *                   sessions that keep their KV cache on this worker
 *
 * Each role loads only its own tensors from the weights source (the decoder
 * still borrows the per-layer embedding table through g3n_text_model_load;
 * with a checkpoint that is an mmapped view it never touches).
 * Every field of a request is checked before use (wire.h); bad requests are
 * answered with ERROR_BAD_REQUEST naming the field.
 *
 * Lifetimes: a role borrows the weights and config (keep them open until
 * g3n_role_close). g3n_role_handle is thread-safe (the encoders serialize
 * their calls; the embedder runs calls in parallel; the decoder computes on
 * one engine thread of its own: a prefill at a time, and the decode steps of
 * different sessions that are pending together as one batched step -
 * continuous batching, g3n_text_batch_forward - so a worker with capacity N
 * (handler threads) serves up to N sessions' steps per forward).
 */
#ifndef G3N_ROLES_H
#define G3N_ROLES_H

#include <stdint.h>

#include "config.h"
#include "quant.h"
#include "status.h"
#include "transport.h"
#include "weights.h"

typedef struct g3n_role g3n_role;

typedef struct g3n_role_options {
    const char *model_dir;  /* checkpoint folder (preprocessor_config.json), or NULL */
    int max_sessions;       /* decoder: sessions held at once (default 16) */
    int64_t max_positions;  /* decoder: largest context a session may ask for (default max_position_embeddings) */
    int64_t max_tokens;     /* embedder: ids per request (default max_position_embeddings) */
    g3n_weight_format weight_format; /* decoder: what it computes with (default G3N_WEIGHTS_EXACT, the stored
                                        weights); bf16/q8/q4 as g3n_text_model_select_weights, cached;
                                        embedder: q8/q4 quantise its projection (g3n_embedder_select_weights) */
    const char *weight_cache;        /* decoder: that cache file, or NULL for the default place */
    int threads;                     /* OpenMP threads of this role's calls (0: the calling thread's default);
                                        lets roles sharing a process use different counts, as daemons do */
    const char *const *submodels;    /* decoder: MatFormer sub-model specs (common/submodel.h) served beside the
                                        full model, as views into its weights; a PrefillRequest's `model` names
                                        one (its spec name); borrowed for g3n_role_open only */
    int submodel_count;
    double session_idle_seconds;     /* decoder: a session idle this long is closed (default 600) */
    int64_t max_session_bytes;       /* decoder: KV caches + scratch of all sessions (default: no limit; a
                                        session that does not fit is refused with ERROR_TOO_LARGE) */
} g3n_role_options;

/* role: G3N_ROLE_VISION_ENCODER, ..._AUDIO_ENCODER, ..._EMBEDDER, ..._DECODER. */
int g3n_role_open(g3n_role **out, int role, g3n_weights *weights, const g3n_model_config *config,
                  const g3n_role_options *options, g3n_error *err);
void g3n_role_close(g3n_role *role); /* accepts NULL */
/* Decoder: how its decode steps were grouped (continuous batching). */
typedef struct g3n_role_decoder_stats {
    uint64_t decode_steps;   /* one-position steps computed */
    uint64_t decode_batches; /* forwards that computed them (a lone step is a batch of one) */
    uint64_t batched_steps;  /* steps that shared their forward with another session's */
    uint64_t largest_batch;
} g3n_role_decoder_stats;
g3n_role_decoder_stats g3n_role_decoder_stats_get(g3n_role *role);
/* Decoder: sessions in use (busy, or used within the stale limit, so a client may
 * still step them); 0 for the other roles. `role` is a g3n_role (void * so that
 * it serves as g3n_worker_drain's busy callback). */
int g3n_role_open_sessions(void *role);

/* The transport handler (user = the g3n_role). */
int g3n_role_handle(void *role, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err);

#endif
