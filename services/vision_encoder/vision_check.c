#include "check_kinds.h"

int g3n_check_kind_image_preprocess(g3n_check_case *c, g3n_error *err)
{
    (void)c;
    return g3n_error_set(err, "kind 'image-preprocess' is not built yet");
}

int g3n_check_kind_vision(g3n_check_case *c, g3n_error *err)
{
    (void)c;
    return g3n_error_set(err, "kind 'vision' is not built yet");
}
