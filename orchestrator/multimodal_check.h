/* multimodal_check.h - the "multimodal" kind of `g3n check`: the towers, the
 * embedder's merge and the language model in one process (multimodal_check.c
 * says what it compares; check_kinds.h: the contract of a kind's runner). */
#ifndef G3N_MULTIMODAL_CHECK_H
#define G3N_MULTIMODAL_CHECK_H

#include "check.h"

int g3n_check_kind_multimodal(g3n_check_case *c, g3n_error *err);

#endif
