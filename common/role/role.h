/* role.h - a worker role's server side as a table of operations, the one
 * interface through which a role daemon's main (role_daemon.h) and the roles
 * started as threads of one process (orchestrator/pipeline.h,
 * g3n_local_roles_start) open, serve and close a role. Each role lives with
 * its model in services/<role>/ and exports its table there:
 *
 *   vision-encoder  services/vision_encoder/vision_role.h   g3n_vision_role_ops
 *   audio-encoder   services/audio_encoder/audio_role.h     g3n_audio_role_ops
 *   embedder        services/embedder/embedder_role.h       g3n_embedder_role_ops
 *   decoder         services/decoder/decoder_role.h         g3n_decoder_role_ops
 *
 * Each role loads only its own tensors from the weights source (the decoder
 * still borrows the per-layer embedding table through g3n_text_model_load;
 * with a checkpoint that is an mmapped view it never touches).
 * Every field of a request is checked before use (wire.h); bad requests are
 * answered with ERROR_BAD_REQUEST naming the field.
 *
 * Lifetimes: a role borrows the weights and config (keep them open until
 * g3n_role_close). g3n_role_handle is thread-safe (each role says how it
 * shares its model between the worker's handler threads).
 */
#ifndef G3N_ROLE_H
#define G3N_ROLE_H

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
    const char *const *submodels;    /* decoder: MatFormer sub-model specs (common/model_io/submodel.h) served beside the
                                        full model, as views into its weights; a PrefillRequest's `model` names
                                        one (its spec name); borrowed for g3n_role_open only */
    int submodel_count;
    double session_idle_seconds;     /* decoder: a session idle this long is closed (default 600) */
    int64_t max_session_bytes;       /* decoder: KV caches + scratch of all sessions (default: no limit; a
                                        session that does not fit is refused with ERROR_TOO_LARGE) */
} g3n_role_options;

/* Daemon options a role takes beyond the common ones (role_daemon.c adds them to its option table). */
#define G3N_ROLE_TAKES_SESSIONS 1u   /* --max-sessions --max-positions --session-idle-s --max-session-mb */
#define G3N_ROLE_TAKES_WEIGHTS 2u    /* --weights (ops.weights_help says what it selects) */
#define G3N_ROLE_TAKES_SUBMODELS 4u  /* --weight-cache --submodel */

typedef struct g3n_role_ops {
    int role; /* G3N_ROLE_VISION_ENCODER, ... (wire.h) */
    /* Loads the role's model; options are complete (g3n_role_open fills the defaults). *state owned by close. */
    int (*open)(void **state, g3n_weights *weights, const g3n_model_config *config, const g3n_role_options *options,
                g3n_error *err);
    void (*close)(void *state); /* accepts NULL */
    /* Serves one request (thread-safe); a request kind it does not serve: g3n_role_unsupported. */
    int (*handle)(void *state, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err);
    /* Handler threads (requests served at once) of a worker of this role in one process. */
    int (*capacity)(const g3n_role_options *options);
    /* Requests or sessions still held, for a draining worker to wait for (NULL: none outlive a request). */
    int (*open_sessions)(void *state);
    unsigned daemon_options; /* G3N_ROLE_TAKES_* */
    const char *weights_help; /* with G3N_ROLE_TAKES_WEIGHTS: --help on what --weights selects ('\n': next line) */
} g3n_role_ops;

/* Opens ops's role: a copy of options (NULL: the defaults) with the defaults filled in. */
int g3n_role_open_ops(g3n_role **out, const g3n_role_ops *ops, g3n_weights *weights, const g3n_model_config *config,
                      const g3n_role_options *options, g3n_error *err);
void g3n_role_close(g3n_role *role); /* accepts NULL */
const g3n_role_ops *g3n_role_ops_of(const g3n_role *role);
/* The role's own state when role was opened with ops, else NULL. */
void *g3n_role_state(const g3n_role *role, const g3n_role_ops *ops);

/* The transport handler (user = the g3n_role). */
int g3n_role_handle(void *role, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err);
/* Sessions in use (ops.open_sessions; 0 without). `role` is a g3n_role (void * so
 * that it serves as g3n_worker_drain's busy callback). */
int g3n_role_open_sessions(void *role);

/* For the roles' handlers: answers ERROR_BAD_REQUEST (err already says why); returns G3N_ERR. */
int g3n_role_bad_request(g3n_worker_call *call, g3n_error *err);
/* Answers ERROR_UNSUPPORTED for a request kind the role does not serve; returns G3N_ERR. */
int g3n_role_unsupported(int role, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err);

#endif
