/* health_file.h - a daemon's health for a cluster manager, as a small file.
 *
 * A daemon given --health-file PATH rewrites PATH about once a second with its
 * state on the first line ("starting", "ready", "not-ready", "draining") and a
 * human-readable detail on the second; it removes the file when it exits. A
 * probe (the daemon binary's --probe live|ready, run by Kubernetes as an exec
 * probe or by compose as a healthcheck) reads it:
 *
 *   live   the file was rewritten within max_age_seconds: the process runs and
 *          its main loop turns (a hung or dead process stops rewriting it);
 *   ready  live, and the state is "ready" (weights loaded, registered with an
 *          orchestrator that answers heartbeats, not draining).
 *
 * A file, not a port, so that no daemon opens a socket for it and a probe costs
 * one stat and one read. The write is atomic (a temporary file renamed over).
 */
#ifndef G3N_HEALTH_FILE_H
#define G3N_HEALTH_FILE_H

#include <stddef.h>

#include "status.h"

#define G3N_HEALTH_MAX_AGE_SECONDS 10

/* Writes "state\ndetail\n" to path atomically. */
int g3n_health_file_write(const char *path, const char *state, const char *detail, g3n_error *err);

/* While a daemon loads its weights (seconds to minutes, building a quantised
 * cache), its main loop does not turn yet: a thread keeps the file rewritten
 * with `state`/`detail` so that a liveness probe passes meanwhile. Stop it
 * (the file stays) before the main loop takes over the writing. */
typedef struct g3n_health_keeper g3n_health_keeper;
int g3n_health_keeper_start(g3n_health_keeper **out, const char *path, const char *state, const char *detail,
                            g3n_error *err);
void g3n_health_keeper_stop(g3n_health_keeper *keeper); /* accepts NULL */

/* what: "live" or "ready". Returns 0 when the probe passes, 1 when it fails,
 * 2 for a bad `what`; message (size bytes) says why in one line. */
int g3n_health_probe(const char *path, const char *what, int max_age_seconds, char *message, size_t size);

#endif
