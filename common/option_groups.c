/* option_groups.c - see option_groups.h. */
#include "option_groups.h"

int g3n_option_parse_weight_format(const char *value, void *format, g3n_error *err)
{
    return g3n_weight_format_parse(value, (g3n_weight_format *)format, err);
}
