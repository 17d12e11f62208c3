#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int g3n_error_set(g3n_error *err, const char *format, ...)
{
    if (err) {
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof(err->message), format, args);
        va_end(args);
    }
    return G3N_ERR;
}

int g3n_error_prefix(g3n_error *err, const char *format, ...)
{
    if (err) {
        char prefix[512];
        char old[sizeof(err->message)];
        va_list args;
        va_start(args, format);
        vsnprintf(prefix, sizeof(prefix), format, args);
        va_end(args);
        memcpy(old, err->message, sizeof(old));
        old[sizeof(old) - 1] = '\0';
        snprintf(err->message, sizeof(err->message), "%s: %s", prefix, old);
    }
    return G3N_ERR;
}
