#include "check_kinds.h"

int g3n_check_kind_text(g3n_check_case *c, g3n_error *err)
{
    (void)c;
    return g3n_error_set(err, "kind 'text' is not built yet");
}
