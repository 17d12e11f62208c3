/* decoder_check.h - the "text" kind of `g3n check`: the language model
 * against the reference (decoder_check.c says what it compares;
 * check_kinds.h: the contract of a kind's runner). */
#ifndef G3N_DECODER_CHECK_H
#define G3N_DECODER_CHECK_H

#include "check.h"

int g3n_check_kind_text(g3n_check_case *c, g3n_error *err);

#endif
