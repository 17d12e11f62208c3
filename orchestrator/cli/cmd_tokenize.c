#include <stdio.h>

#include "commands.h"

int g3n_command_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "g3n tokenize: error: not built yet\n");
    return 1;
}

int g3n_command_detokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "g3n detokenize: error: not built yet\n");
    return 1;
}
