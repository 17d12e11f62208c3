/* g3n-embedder - the embedder role as a daemon (orchestrator/daemon.h). */
#include "daemon.h"
#include "wire.h"

int main(int argc, char **argv)
{
    return g3n_daemon_main(G3N_ROLE_EMBEDDER, "g3n-embedder", argc, argv);
}
