/* check_kinds.h - one runner per fixture kind. Each returns G3N_OK after
 * comparing (the case's pass/fail counts say how it went) or G3N_ERR when it
 * could not run at all (counted as a failure by `g3n check`). A kind that is
 * not built yet must return G3N_ERR: never a pass.
 *
 * Each runner is declared next to its definition: the kinds of common/ here,
 * the others in their own folder's header (decoder_check.h, audio_check.h,
 * vision_check.h, orchestrator/multimodal_check.h); `g3n check`
 * (orchestrator/cli/cmd_check.c) puts them in its table by name. */
#ifndef G3N_CHECK_KINDS_H
#define G3N_CHECK_KINDS_H

#include "check.h"

int g3n_check_kind_synth(g3n_check_case *c, g3n_error *err);     /* synth_check.c */
int g3n_check_kind_tokenizer(g3n_check_case *c, g3n_error *err); /* tokenizer_check.c */

#endif
