#include <stdio.h>

#include "commands.h"

int g3n_command_generate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "g3n generate: error: not built yet\n");
    return 1;
}
