/* vision_role.h - the vision-encoder role (common/role/role.h): EncodeImageRequest
 * (image file bytes, a decoded frame as packed RGB [H, W, 3] u8, or
 * pixel_values [3, S, S]) -> the vision tower's tokens [soft_tokens,
 * vision_hidden]. Image preprocessing happens here and only here
 * (image_preprocess.h). Requests are served one at a time (one tower, its
 * buffers reused). */
#ifndef G3N_VISION_ROLE_H
#define G3N_VISION_ROLE_H

#include "role.h"

extern const g3n_role_ops g3n_vision_role_ops;

#endif
