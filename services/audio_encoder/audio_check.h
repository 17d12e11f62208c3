/* audio_check.h - the "audio" check kind at a chosen compute precision.
 * g3n check runs it exact (g3n_check_kind_audio = G3N_PRECISION_F32, the
 * case's tolerances); the bf16 and int8 fast paths are held to the stated budgets below
 * (tests/unit/test_tower_speed.c runs it on audio-tiny and audio-wide). */
#ifndef G3N_AUDIO_CHECK_H
#define G3N_AUDIO_CHECK_H

#include "check.h"
#include "gemm_packed.h"
#include "status.h"

/* bf16 compute: encoder output and embed_audio soft tokens rel-L2 vs the goldens. */
#define G3N_AUDIO_BF16_REL_L2 1e-2
/* int8 compute (AVX512-VNNI, per-row/per-output scales): measured 1.7e-2
 * (audio-wide, 2 layers) and 2.2e-2 against f32 over the 12 layers of E2B. */
#define G3N_AUDIO_INT8_REL_L2 5e-2

/* Features and masks (exact in both precisions), encoder output and
 * embeddings; records pass/fail lines in c. */
int g3n_audio_check_case(g3n_check_case *c, g3n_precision precision, g3n_error *err);

/* The "audio" kind of `g3n check` (check_kinds.h: its contract). */
int g3n_check_kind_audio(g3n_check_case *c, g3n_error *err);

#endif
