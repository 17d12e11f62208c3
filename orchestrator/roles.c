/* roles.c - the four worker roles by number (roles.h). */
#include "roles.h"

#include "wire.h"

const g3n_role_ops *g3n_role_ops_for(int role)
{
    switch (role) {
    case G3N_ROLE_VISION_ENCODER:
        return &g3n_vision_role_ops;
    case G3N_ROLE_AUDIO_ENCODER:
        return &g3n_audio_role_ops;
    case G3N_ROLE_EMBEDDER:
        return &g3n_embedder_role_ops;
    case G3N_ROLE_DECODER:
        return &g3n_decoder_role_ops;
    default:
        return NULL;
    }
}

int g3n_role_open(g3n_role **out, int role, g3n_weights *weights, const g3n_model_config *config,
                  const g3n_role_options *options, g3n_error *err)
{
    const g3n_role_ops *ops = g3n_role_ops_for(role);
    if (!ops) {
        *out = NULL;
        return g3n_error_set(err, "role %d is not a worker role", role);
    }
    return g3n_role_open_ops(out, ops, weights, config, options, err);
}
