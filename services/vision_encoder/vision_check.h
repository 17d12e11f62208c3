/* vision_check.h - the "vision" check kind at a chosen compute precision.
 * g3n check runs it exact (g3n_check_kind_vision = G3N_PRECISION_F32, the
 * case's tolerances); the bf16 and int8 fast paths are held to the stated budgets below
 * (tests/unit/test_tower_speed.c runs it on vision-tiny and vision-full). */
#ifndef G3N_VISION_CHECK_H
#define G3N_VISION_CHECK_H

#include "check.h"
#include "gemm_packed.h"
#include "status.h"

/* bf16 compute: tower output and embed_vision soft tokens rel-L2 vs the goldens (issue 8). */
#define G3N_VISION_BF16_REL_L2 1e-2
/* int8 compute (AVX512-VNNI, per-row/per-output scales): a coarse path,
 * measured 4.4e-2 (vision-tiny) and 5.5e-2 (vision-full); prefer bf16. */
#define G3N_VISION_INT8_REL_L2 1e-1

/* Tower output and embeddings of the case's pixel_values; records pass/fail lines in c. */
int g3n_vision_check_case(g3n_check_case *c, g3n_precision precision, g3n_error *err);

/* The "image-preprocess" and "vision" kinds of `g3n check` (check_kinds.h: their contract). */
int g3n_check_kind_image_preprocess(g3n_check_case *c, g3n_error *err);
int g3n_check_kind_vision(g3n_check_case *c, g3n_error *err);

#endif
