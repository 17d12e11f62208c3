/* g3n-decoder - the decoder role as a daemon (common/role/role_daemon.h). */
#include "role_daemon.h"
#include "decoder_role.h"

int main(int argc, char **argv)
{
    return g3n_role_daemon_main(&g3n_decoder_role_ops, "g3n-decoder", argc, argv);
}
