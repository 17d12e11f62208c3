/* embedder_role.h - the embedder role (common/role/role.h): EmbedRequest (ids +
 * media tokens) -> inputs_embeds and per-layer inputs (embedder.h: the
 * merge). Requests run in parallel, each on its handler thread's OpenMP pool,
 * with output buffers reused (no allocation per token). */
#ifndef G3N_EMBEDDER_ROLE_H
#define G3N_EMBEDDER_ROLE_H

#include "role.h"

extern const g3n_role_ops g3n_embedder_role_ops;

#endif
