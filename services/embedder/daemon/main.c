/* g3n-embedder - the embedder role as a daemon (common/role/role_daemon.h). */
#include "role_daemon.h"
#include "embedder_role.h"

int main(int argc, char **argv)
{
    return g3n_role_daemon_main(&g3n_embedder_role_ops, "g3n-embedder", argc, argv);
}
