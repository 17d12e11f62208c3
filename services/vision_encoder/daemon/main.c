/* g3n-vision-encoder - the vision-encoder role as a daemon (common/role/role_daemon.h). */
#include "role_daemon.h"
#include "vision_role.h"

int main(int argc, char **argv)
{
    return g3n_role_daemon_main(&g3n_vision_role_ops, "g3n-vision-encoder", argc, argv);
}
