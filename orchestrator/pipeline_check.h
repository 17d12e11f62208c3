/* pipeline_check.h - a `text` or `multimodal` fixture case driven through the
 * pipeline's transport (a broker and its workers: threads over inproc://, or
 * the separate daemons over tcp://) instead of direct calls: the same goldens
 * and tolerances as `g3n check`. The multimodal case sends the golden
 * pixel_values and log-mel features to the encoders as tensors.
 *
 * Compares: every prompt row's logits (the all-logits prefill), each decode
 * step's logits, and the greedy tokens (exact). */
#ifndef G3N_PIPELINE_CHECK_H
#define G3N_PIPELINE_CHECK_H

#include "check.h"
#include "transport.h"

int g3n_pipeline_check_case(g3n_check_case *c, g3n_client *client, g3n_error *err);

#endif
