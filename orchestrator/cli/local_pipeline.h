/* local_pipeline.h - how `g3n run` and `g3n serve` serve a model themselves:
 * the config and tokenizer of a g3n_model_source, a broker bound to an
 * inproc:// endpoint (and to --bind's, where daemons may connect), the worker
 * roles as threads of this process on the source's weights, and the wait
 * until each role needed has a live worker. Zero the struct before the first
 * call; g3n_local_pipeline_stop frees whatever was made. */
#ifndef G3N_LOCAL_PIPELINE_H
#define G3N_LOCAL_PIPELINE_H

#include "config.h"
#include "model_source.h"
#include "pipeline.h"
#include "roles.h"
#include "tokenizer.h"
#include "transport.h"

typedef struct g3n_local_pipeline {
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_broker *broker;
    g3n_weights *weights; /* NULL until g3n_local_pipeline_start_roles */
    g3n_local_roles roles;
    const char *inproc;              /* the roles' endpoint (borrowed) */
    g3n_transport_options transport; /* the broker's, the roles' too */
} g3n_local_pipeline;

/* Loads the source's config (g3n_model_source_locate_config first) and its
 * tokenizer. */
int g3n_local_pipeline_load(g3n_local_pipeline *pipeline, g3n_model_source *source, g3n_error *err);

/* Starts the broker on inproc and, when bind is not NULL, on bind too. */
int g3n_local_pipeline_start_broker(g3n_local_pipeline *pipeline, const char *inproc, const char *bind,
                                    const g3n_transport_options *transport, g3n_error *err);

/* Opens the source's weights and starts the roles of role_mask (bit
 * 1 << role) as threads on the broker's inproc endpoint, with options (their
 * model_dir is the source's). */
int g3n_local_pipeline_start_roles(g3n_local_pipeline *pipeline, const g3n_model_source *source,
                                   g3n_role_options options, unsigned role_mask, g3n_error *err);

/* Waits until each role of role_mask has a live worker, up to timeout_ms for
 * each: this process's threads or daemons connected to the broker. */
int g3n_local_pipeline_wait(g3n_local_pipeline *pipeline, unsigned role_mask, int timeout_ms, g3n_error *err);

/* Stops the roles and the broker, then frees the weights, tokenizer and config. */
void g3n_local_pipeline_stop(g3n_local_pipeline *pipeline);

#endif
