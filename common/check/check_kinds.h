/* check_kinds.h - one runner per fixture kind. Each returns G3N_OK after
 * comparing (the case's pass/fail counts say how it went) or G3N_ERR when it
 * could not run at all (counted as a failure by `g3n check`). A kind that is
 * not built yet must return G3N_ERR: never a pass. */
#ifndef G3N_CHECK_KINDS_H
#define G3N_CHECK_KINDS_H

#include "check.h"

int g3n_check_kind_synth(g3n_check_case *c, g3n_error *err);            /* common/synth_check.c */
int g3n_check_kind_tokenizer(g3n_check_case *c, g3n_error *err);        /* common/tokenizer_check.c */
int g3n_check_kind_text(g3n_check_case *c, g3n_error *err);             /* services/decoder/decoder_check.c */
int g3n_check_kind_audio(g3n_check_case *c, g3n_error *err);            /* services/audio_encoder/audio_check.c */
int g3n_check_kind_image_preprocess(g3n_check_case *c, g3n_error *err); /* services/vision_encoder/vision_check.c */
int g3n_check_kind_vision(g3n_check_case *c, g3n_error *err);           /* services/vision_encoder/vision_check.c */
int g3n_check_kind_multimodal(g3n_check_case *c, g3n_error *err);       /* orchestrator/multimodal_check.c */

#endif
