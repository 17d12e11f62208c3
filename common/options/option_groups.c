/* option_groups.c - see option_groups.h. */
#include "option_groups.h"

int g3n_option_parse_weight_format(const char *value, void *format, g3n_error *err)
{
    return g3n_weight_format_parse(value, (g3n_weight_format *)format, err);
}

int g3n_option_parse_precision(const char *value, void *precision, g3n_error *err)
{
    if (g3n_precision_parse(value, (g3n_precision *)precision, err) != G3N_OK)
        return g3n_error_prefix(err, "--precision");
    return G3N_OK;
}
