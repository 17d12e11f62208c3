/* roles.h - the four worker roles by number, for the roles that run as threads
 * of one process (pipeline.h, g3n_local_roles_start: g3n run, g3n serve, the
 * tests and benches). Each role's server side lives with its model
 * (services/<role>/<role>_role.h) behind the common interface (common/role/role.h); a
 * role daemon links only its own (common/role/role_daemon.h).
 *
 *   vision-encoder  EncodeImageRequest -> the vision tower's tokens
 *   audio-encoder   EncodeAudioRequest -> the audio tower's tokens + padding
 *   embedder        EmbedRequest -> inputs_embeds and per-layer inputs
 *   decoder         PrefillRequest / DecodeStepRequest / EndSession
 */
#ifndef G3N_ROLES_H
#define G3N_ROLES_H

#include "audio_role.h"
#include "decoder_role.h"
#include "embedder_role.h"
#include "role.h"
#include "vision_role.h"

/* The role's operations (G3N_ROLE_VISION_ENCODER ... G3N_ROLE_DECODER), or NULL. */
const g3n_role_ops *g3n_role_ops_for(int role);

/* g3n_role_open_ops with g3n_role_ops_for(role). */
int g3n_role_open(g3n_role **out, int role, g3n_weights *weights, const g3n_model_config *config,
                  const g3n_role_options *options, g3n_error *err);

#endif
