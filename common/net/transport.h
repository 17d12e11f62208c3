/* transport.h - ZeroMQ transport between the g3n roles (zguide patterns:
 * load-balancing broker, Paranoid-Pirate heartbeats).
 *
 *   broker   (orchestrator side) binds a ROUTER on one or more endpoints
 *            (tcp://..., inproc://...). Workers connect to it. It runs on its
 *            own thread: ZeroMQ sockets are not thread-safe, so callers never
 *            touch its sockets.
 *   client   one per calling thread: a DEALER on the broker's private inproc
 *            endpoint. Submits requests (serialized envelopes) for a role and
 *            receives the replies and streamed events of its requests.
 *   worker   (daemon side) a DEALER connected to the broker: announces itself
 *            with Hello (role, model id, capacity), heartbeats every interval
 *            from its own socket thread (also while the handler computes),
 *            runs requests on `capacity` handler threads, and reconnects when
 *            the broker goes silent.
 *
 * Routing: a request goes to the live worker of its role with the fewest
 * outstanding requests (below its capacity); it waits in the broker's queue
 * while all are busy. A request may be pinned to a worker (decoder sessions
 * are sticky: the KV cache lives on one worker; the reply says which worker
 * served a request). When a worker misses heartbeats for heartbeat_timeout_ms
 * it is dropped: each of its in-flight requests is re-sent to another worker
 * of the role when it was submitted as retryable (and no streamed event was
 * delivered yet), else it fails with ERROR_WORKER_LOST. A request for a role
 * with no live worker fails with ERROR_NO_WORKER after no_worker_wait_ms.
 * Transport failures reach the client as Error envelopes, so a caller always
 * gets an answer: nothing waits forever.
 *
 * Deadlines: every request has request_timeout_ms in the broker (waiting for a
 * worker, then between a worker's messages); a client that closes takes its
 * requests with it (queued ones are dropped, running ones cancelled, none is
 * retried for a client that is gone).
 *
 * Limits: max_message_bytes bounds every message (ZMQ_MAXMSGSIZE on the
 * sockets, and the envelope checks in wire.h).
 *
 * Ownership: every object is freed by its own close/stop function. Close the
 * clients (and in-process workers using the broker's context) before stopping
 * the broker.
 */
#ifndef G3N_TRANSPORT_H
#define G3N_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "curve_keys.h"
#include "status.h"
#include "wire.h"

typedef struct g3n_transport_options {
    int heartbeat_interval_ms; /* default 1000 */
    int heartbeat_timeout_ms;  /* silence after which a peer counts as dead; default 5000 */
    int no_worker_wait_ms;     /* how long a request waits for a worker of its role to exist; default 10000 */
    int max_retries;           /* re-sends of a retryable request after its worker died; default 1 */
    int64_t max_message_bytes; /* default G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES */
    int verbose;               /* 1: log worker joins/losses to stderr */
    /* Security (curve_keys.h): every non-inproc endpoint speaks CURVE when
     * curve.enabled (the broker then runs a ZAP handler on curve.keys_dir and
     * checks each worker message's key and role); plain tcp:// is refused
     * unless insecure is 1. */
    int insecure;
    g3n_curve_options curve;
    int request_timeout_ms;    /* a request's deadline in the broker (default 600000: 10 min): a worker that
                                  heartbeats but sends nothing (no reply, no streamed event) for this long,
                                  or a queue that did not free a worker for it, fails it (and the worker
                                  gets a Cancel) instead of holding it for ever */
} g3n_transport_options;

g3n_transport_options g3n_transport_default_options(void);

/* ---- broker ---- */
typedef struct g3n_broker g3n_broker;

/* Binds every endpoint (e.g. "tcp://0.0.0.0:5555", "inproc://g3n-workers") and
 * starts the broker thread. */
int g3n_broker_start(g3n_broker **out, const char *const *endpoints, int endpoint_count,
                     const g3n_transport_options *options, g3n_error *err);
/* Stops the thread and closes everything; accepts NULL. */
void g3n_broker_stop(g3n_broker *broker);
/* The ZeroMQ context: in-process workers pass it to g3n_worker_start so that
 * they can use the broker's inproc:// endpoints. */
void *g3n_broker_context(g3n_broker *broker);
/* Secures another socket of the broker's context (the front door's ROUTER)
 * as the broker's own: CURVE server with the given ZAP domain, or the
 * insecure rule. Call before binding endpoint. */
int g3n_broker_secure_socket(g3n_broker *broker, void *socket, const char *endpoint, const char *domain,
                             g3n_error *err);
/* The broker's ZAP handler (NULL when CURVE is off): g3n_zap_check_message. */
g3n_zap *g3n_broker_zap(g3n_broker *broker);

typedef struct g3n_broker_stats {
    int live_workers[G3N_ROLE_COUNT];     /* connected, draining ones included */
    int draining_workers[G3N_ROLE_COUNT]; /* of those, the ones finishing before they leave */
    uint64_t requests_dispatched, requests_retried, requests_failed, workers_lost, messages_rejected;
    uint64_t messages_unauthorised; /* worker messages refused: key revoked, other role, name of another key */
} g3n_broker_stats;
void g3n_broker_get_stats(g3n_broker *broker, g3n_broker_stats *stats);
/* Waits until at least `count` workers of `role` are live; G3N_ERR after timeout_ms. */
int g3n_broker_wait_workers(g3n_broker *broker, int role, int count, int timeout_ms, g3n_error *err);

/* ---- client ---- */
typedef struct g3n_client g3n_client;

int g3n_client_open(g3n_client **out, g3n_broker *broker, g3n_error *err);
void g3n_client_close(g3n_client *client); /* accepts NULL */

typedef struct g3n_request_options {
    int role;
    int retryable;           /* 1: may be re-sent to another worker if its worker dies */
    const char *pin_worker;  /* NULL or the worker that must serve it (sticky sessions) */
} g3n_request_options;

/* Sends envelope (its request_id is set to a fresh id, returned in *request_id). */
int g3n_client_submit(g3n_client *client, const g3n_request_options *options, G3n__Envelope *envelope,
                      uint64_t *request_id, g3n_error *err);

typedef struct g3n_reply {
    uint64_t request_id;
    int final;               /* 0: a streamed event, more follow */
    char worker[64];         /* the worker that produced it ("" for the broker's own errors) */
    G3n__Envelope *envelope; /* owned: g3n_reply_clear */
} g3n_reply;
void g3n_reply_clear(g3n_reply *reply);

/* Next reply or event for any of this client's requests. G3N_ERR on timeout
 * (timeout_ms < 0: wait as long as it takes; the broker always answers). */
int g3n_client_receive(g3n_client *client, int timeout_ms, g3n_reply *reply, g3n_error *err);
/* Asks the broker to cancel a request (forwarded to its worker). */
/* Tests and tools: sends raw bytes as a request payload, unchecked (e.g. a
 * malformed message, to see the worker reject it). */
int g3n_client_submit_bytes(g3n_client *client, const g3n_request_options *options, const void *bytes, size_t size,
                            uint64_t *request_id, g3n_error *err);
int g3n_client_cancel(g3n_client *client, uint64_t request_id, g3n_error *err);

/* Submit + receive until the final reply of that request. on_event (may be
 * NULL) gets each streamed (partial) envelope; it returns nonzero to cancel.
 * An Error body in the final reply is turned into G3N_ERR with its message
 * (the reply is still returned for inspection). Replies for the client's other
 * requests that arrive meanwhile are dropped: use submit/receive for those. */
typedef int (*g3n_event_callback)(void *user, const G3n__Envelope *event);
int g3n_client_call(g3n_client *client, const g3n_request_options *options, G3n__Envelope *envelope,
                    g3n_event_callback on_event, void *user, g3n_reply *reply, g3n_error *err);

/* ---- worker ---- */
typedef struct g3n_worker g3n_worker;
typedef struct g3n_worker_call g3n_worker_call;

/* Runs one request. Send the replies with g3n_worker_call_send (partial ones
 * for streams, then one final). Returning G3N_ERR without a final reply sends
 * an Error (code from g3n_worker_call_set_code, default ERROR_INTERNAL) with
 * err's message. Runs on a handler thread (capacity of them). */
typedef int (*g3n_worker_handler)(void *user, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err);

typedef struct g3n_worker_options {
    int role;
    const char *endpoint;   /* broker endpoint to connect to */
    const char *name;       /* worker name / routing id (default: role-host-pid-N) */
    const char *model_id;   /* announced in Hello */
    int capacity;           /* handler threads (default 1) */
    void *zmq_context;      /* NULL: the worker makes its own (a daemon); else borrowed (in-process) */
    g3n_transport_options transport;
} g3n_worker_options;

int g3n_worker_start(g3n_worker **out, const g3n_worker_options *options, g3n_worker_handler handler, void *user,
                     g3n_error *err);
/* Says Goodbye to the broker, lets running requests finish, joins the threads. Accepts NULL. */
void g3n_worker_stop(g3n_worker *worker);
/* For tests: dies abruptly, as a killed process: no Goodbye, no more
 * heartbeats or replies; the socket closes with nothing flushed. The object
 * must still be released with g3n_worker_stop. */
void g3n_worker_kill(g3n_worker *worker);
const char *g3n_worker_name(const g3n_worker *worker);
/* Requests this worker has received so far. */
uint64_t g3n_worker_requests_received(g3n_worker *worker);
/* Messages it rejected (malformed, other version, oversized). */
uint64_t g3n_worker_messages_rejected(g3n_worker *worker);
/* 1 while the broker has been heard from within heartbeat_timeout_ms (registered and reachable). */
int g3n_worker_connected(g3n_worker *worker);
/* Graceful drain (SIGTERM): tells the broker to send no new requests (only those
 * pinned to this worker, i.e. its sessions' steps), waits for its acknowledgement,
 * then until no request is queued or running and busy(busy_user) (may be NULL)
 * returns 0, e.g. a decoder's open sessions. G3N_ERR (what was left, in err) after
 * timeout_ms. Requests keep being served meanwhile; call g3n_worker_stop after. */
int g3n_worker_drain(g3n_worker *worker, int timeout_ms, int (*busy)(void *user), void *busy_user, g3n_error *err);
/* (A second SIGTERM/SIGINT, with g3n_install_shutdown_handlers, cuts the drain short too.) */
int g3n_worker_draining(g3n_worker *worker);

int g3n_worker_call_send(g3n_worker_call *call, G3n__Envelope *reply, int partial, g3n_error *err);
/* Sends an Error as the final reply. */
int g3n_worker_call_fail(g3n_worker_call *call, int code, const char *message);
void g3n_worker_call_set_code(g3n_worker_call *call, int code);
/* 1 once a Cancel for this request arrived (or the worker is stopping). */
int g3n_worker_call_cancelled(const g3n_worker_call *call);
uint64_t g3n_worker_call_request_id(const g3n_worker_call *call);

/* ---- daemons ---- */
/* Installs SIGTERM/SIGINT handlers that count the signals; g3n_shutdown_requested()
 * returns that count (0: none). A second signal cuts a g3n_worker_drain short. */
void g3n_install_shutdown_handlers(void);
int g3n_shutdown_requested(void);

#endif
