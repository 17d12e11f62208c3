/* wire.h - the protocol's envelopes and tensors (proto/g3n.proto, protobuf-c)
 * with validation of every field before use.
 *
 * Ownership: g3n_wire_pack returns a malloc'd buffer (caller frees with free());
 * g3n_wire_unpack returns an envelope owned by the caller (g3n_wire_free).
 * A g3n_wire_tensor only borrows its data: keep the data alive until packed.
 * Byte order: tensors are little-endian on the wire; g3n targets x86-64
 * (little-endian hosts), checked at compile time.
 */
#ifndef G3N_WIRE_H
#define G3N_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "g3n.pb-c.h"
#include "status.h"
#include "tensor.h"

#define G3N_PROTOCOL_VERSION 2u
/* Default largest message a peer accepts (ZMQ_MAXMSGSIZE and our own checks). */
#define G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES ((int64_t)512 << 20)

/* Roles (the proto's Role values). */
#define G3N_ROLE_VISION_ENCODER G3N__ROLE__ROLE_VISION_ENCODER
#define G3N_ROLE_AUDIO_ENCODER G3N__ROLE__ROLE_AUDIO_ENCODER
#define G3N_ROLE_EMBEDDER G3N__ROLE__ROLE_EMBEDDER
#define G3N_ROLE_DECODER G3N__ROLE__ROLE_DECODER
#define G3N_ROLE_ORCHESTRATOR G3N__ROLE__ROLE_ORCHESTRATOR
#define G3N_ROLE_COUNT 6

/* "vision-encoder", "audio-encoder", "embedder", "decoder", "orchestrator"; "unknown" otherwise. */
const char *g3n_role_name(int role);
/* Body name for messages ("encode_image", ...); "none"/"unknown" otherwise. */
const char *g3n_wire_body_name(int body_case);
const char *g3n_wire_error_code_name(int code);

/* Serializes (sets protocol_version = G3N_PROTOCOL_VERSION first). *data is malloc'd. */
int g3n_wire_pack(G3n__Envelope *envelope, uint8_t **data, size_t *size, g3n_error *err);

/* Parses and checks an envelope: size <= max_bytes (<= 0: the default limit),
 * well-formed protobuf, protocol_version == G3N_PROTOCOL_VERSION, a body set.
 * On failure *error_code is the proto ErrorCode to answer with, and *out may
 * still hold the parsed envelope (e.g. another version: its request_id is
 * needed for the error reply) - free it either way. */
int g3n_wire_unpack(const uint8_t *data, size_t size, int64_t max_bytes, G3n__Envelope **out, int *error_code,
                    g3n_error *err);
void g3n_wire_free(G3n__Envelope *envelope); /* accepts NULL */

/* A tensor message with room for its shape; data is borrowed. */
typedef struct g3n_wire_tensor {
    G3n__Tensor message;
    int64_t shape[G3N_MAX_DIMS];
} g3n_wire_tensor;

int g3n_wire_dtype_to_proto(g3n_dtype dtype);
/* G3N_ERR for DTYPE_UNSPECIFIED or an unknown value. */
int g3n_wire_dtype_from_proto(int proto_dtype, g3n_dtype *dtype);

/* Points wt at a contiguous array (no copy). */
void g3n_wire_tensor_borrow(g3n_wire_tensor *wt, g3n_dtype dtype, int ndim, const int64_t *shape, const void *data);

/* Checks a received tensor and views it (borrowed from the message):
 *   m present; dtype known and == dtype; ndim == ndim; shape[i] >= 0 and
 *   == expected_shape[i] where expected_shape[i] >= 0 (-1: any; expected_shape
 *   may be NULL); numel <= max_elements (<= 0: no limit); numel x dtype size
 *   == len(data) with no overflow; data aligned for the dtype.
 * `name` names the field in messages ("embed.ids"). */
int g3n_wire_tensor_view(const G3n__Tensor *m, const char *name, g3n_dtype dtype, int ndim,
                         const int64_t *expected_shape, int64_t max_elements, g3n_tensor *view, g3n_error *err);

/* Fills env (and error_body, which env points at) as an Error reply. message is borrowed. */
void g3n_wire_error_init(G3n__Envelope *env, G3n__Error *error_body, uint64_t request_id, int code,
                         const char *message);

#endif
