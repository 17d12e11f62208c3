#include <stdio.h>

#include "commands.h"

int g3n_command_encode_image(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "g3n encode-image: error: not built yet\n");
    return 1;
}
