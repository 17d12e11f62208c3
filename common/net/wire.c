/* wire.c - envelopes and tensors on the wire, validated. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "g3n's wire format is little-endian; a big-endian host needs byte swapping in wire.c"
#endif

const char *g3n_role_name(int role)
{
    switch (role) {
    case G3N_ROLE_VISION_ENCODER: return "vision-encoder";
    case G3N_ROLE_AUDIO_ENCODER: return "audio-encoder";
    case G3N_ROLE_EMBEDDER: return "embedder";
    case G3N_ROLE_DECODER: return "decoder";
    case G3N_ROLE_ORCHESTRATOR: return "orchestrator";
    default: return "unknown";
    }
}

const char *g3n_wire_body_name(int body_case)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field(&g3n__envelope__descriptor, (unsigned)body_case);
    if (body_case == G3N__ENVELOPE__BODY__NOT_SET)
        return "none";
    if (!field || field->id < 10)
        return "unknown";
    return field->name;
}

const char *g3n_wire_error_code_name(int code)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&g3n__error_code__descriptor, code);
    return v ? v->name : "ERROR_UNKNOWN";
}

int g3n_wire_pack(G3n__Envelope *envelope, uint8_t **data, size_t *size, g3n_error *err)
{
    envelope->protocol_version = G3N_PROTOCOL_VERSION;
    size_t n = g3n__envelope__get_packed_size(envelope);
    uint8_t *buffer = malloc(n ? n : 1);
    if (!buffer)
        return g3n_error_set(err, "wire: out of memory packing a %s message of %zu bytes",
                             g3n_wire_body_name(envelope->body_case), n);
    size_t written = g3n__envelope__pack(envelope, buffer);
    if (written != n) {
        free(buffer);
        return g3n_error_set(err, "wire: packing %s wrote %zu of %zu bytes", g3n_wire_body_name(envelope->body_case),
                             written, n);
    }
    *data = buffer;
    *size = n;
    return G3N_OK;
}

/* 1 when m or a message inside it kept an unknown field numbered 0. Protobuf has no field 0, yet
 * protobuf-c accepts one whose tag is written in more bytes than it needs, and packs it back in one
 * byte that it then refuses: such a message would not survive being forwarded (found by fuzz_wire). */
static int holds_field_zero(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *at = (const char *)m + fd->offset;
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) { /* only the member that is set lives in the union */
            if (*(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
                continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)at;
            for (size_t k = 0; k < n; k++)
                if (items && items[k] && holds_field_zero(items[k]))
                    return 1;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
            if (sub && holds_field_zero(sub))
                return 1;
        }
    }
    return 0;
}

int g3n_wire_unpack(const uint8_t *data, size_t size, int64_t max_bytes, G3n__Envelope **out, int *error_code,
                    g3n_error *err)
{
    *out = NULL;
    *error_code = G3N__ERROR_CODE__ERROR_UNSPECIFIED;
    if (max_bytes <= 0)
        max_bytes = G3N_WIRE_DEFAULT_MAX_MESSAGE_BYTES;
    if ((uint64_t)size > (uint64_t)max_bytes) {
        *error_code = G3N__ERROR_CODE__ERROR_TOO_LARGE;
        return g3n_error_set(err, "message of %zu bytes is over the limit of %lld bytes", size, (long long)max_bytes);
    }
    G3n__Envelope *env = g3n__envelope__unpack(NULL, size, data);
    if (!env) {
        *error_code = G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        return g3n_error_set(err, "malformed message: %zu bytes that are not a g3n.Envelope protobuf", size);
    }
    *out = env;
    if (holds_field_zero(&env->base)) {
        *error_code = G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        return g3n_error_set(err, "malformed message: %zu bytes holding a field numbered 0, which protobuf has not",
                             size);
    }
    if (env->protocol_version != G3N_PROTOCOL_VERSION) {
        *error_code = G3N__ERROR_CODE__ERROR_VERSION_MISMATCH;
        return g3n_error_set(err, "protocol version %u is not supported (this peer speaks version %u)",
                             env->protocol_version, G3N_PROTOCOL_VERSION);
    }
    if (env->body_case == G3N__ENVELOPE__BODY__NOT_SET) {
        *error_code = G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        return g3n_error_set(err, "envelope (request %llu) has no body", (unsigned long long)env->request_id);
    }
    /* protobuf-c leaves a sub-message NULL when it was absent on the wire;
     * the oneof case says which body is set, and it must be present. */
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field(&g3n__envelope__descriptor, (unsigned)env->body_case);
    if (!field) {
        *error_code = G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        return g3n_error_set(err, "envelope (request %llu) has an unknown body %d", (unsigned long long)env->request_id,
                             (int)env->body_case);
    }
    void *const *body = (void *const *)((const char *)env + field->offset);
    if (*body == NULL) {
        *error_code = G3N__ERROR_CODE__ERROR_BAD_REQUEST;
        return g3n_error_set(err, "envelope (request %llu): body %s is empty", (unsigned long long)env->request_id,
                             field->name);
    }
    return G3N_OK;
}

void g3n_wire_free(G3n__Envelope *envelope)
{
    if (envelope)
        g3n__envelope__free_unpacked(envelope, NULL);
}

int g3n_wire_dtype_to_proto(g3n_dtype dtype)
{
    switch (dtype) {
    case G3N_DTYPE_F32: return G3N__DTYPE__DTYPE_F32;
    case G3N_DTYPE_BF16: return G3N__DTYPE__DTYPE_BF16;
    case G3N_DTYPE_F16: return G3N__DTYPE__DTYPE_F16;
    case G3N_DTYPE_I32: return G3N__DTYPE__DTYPE_I32;
    case G3N_DTYPE_I64: return G3N__DTYPE__DTYPE_I64;
    case G3N_DTYPE_U8: return G3N__DTYPE__DTYPE_U8;
    default: return G3N__DTYPE__DTYPE_UNSPECIFIED;
    }
}

int g3n_wire_dtype_from_proto(int proto_dtype, g3n_dtype *dtype)
{
    switch (proto_dtype) {
    case G3N__DTYPE__DTYPE_F32: *dtype = G3N_DTYPE_F32; return G3N_OK;
    case G3N__DTYPE__DTYPE_BF16: *dtype = G3N_DTYPE_BF16; return G3N_OK;
    case G3N__DTYPE__DTYPE_F16: *dtype = G3N_DTYPE_F16; return G3N_OK;
    case G3N__DTYPE__DTYPE_I32: *dtype = G3N_DTYPE_I32; return G3N_OK;
    case G3N__DTYPE__DTYPE_I64: *dtype = G3N_DTYPE_I64; return G3N_OK;
    case G3N__DTYPE__DTYPE_U8: *dtype = G3N_DTYPE_U8; return G3N_OK;
    default: return G3N_ERR;
    }
}

void g3n_wire_tensor_borrow(g3n_wire_tensor *wt, g3n_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    g3n__tensor__init(&wt->message);
    if (ndim > G3N_MAX_DIMS)
        ndim = G3N_MAX_DIMS;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        wt->shape[i] = shape[i];
        numel *= shape[i];
    }
    wt->message.dtype = (G3n__DType)g3n_wire_dtype_to_proto(dtype);
    wt->message.n_shape = (size_t)ndim;
    wt->message.shape = wt->shape;
    wt->message.data.len = (size_t)numel * g3n_dtype_size(dtype);
    wt->message.data.data = (uint8_t *)data;
}

int g3n_wire_tensor_view(const G3n__Tensor *m, const char *name, g3n_dtype dtype, int ndim,
                         const int64_t *expected_shape, int64_t max_elements, g3n_tensor *view, g3n_error *err)
{
    if (!m)
        return g3n_error_set(err, "%s: tensor is missing", name);
    g3n_dtype got;
    if (g3n_wire_dtype_from_proto(m->dtype, &got) != G3N_OK)
        return g3n_error_set(err, "%s: unknown dtype %d", name, (int)m->dtype);
    if (got != dtype)
        return g3n_error_set(err, "%s: dtype %s, expected %s", name, g3n_dtype_name(got), g3n_dtype_name(dtype));
    if ((int64_t)m->n_shape != ndim || ndim > G3N_MAX_DIMS)
        return g3n_error_set(err, "%s: %zu dimensions, expected %d", name, m->n_shape, ndim);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        int64_t d = m->shape[i];
        if (d < 0)
            return g3n_error_set(err, "%s: dimension %d is negative (%lld)", name, i, (long long)d);
        if (expected_shape && expected_shape[i] >= 0 && d != expected_shape[i])
            return g3n_error_set(err, "%s: dimension %d is %lld, expected %lld", name, i, (long long)d,
                                 (long long)expected_shape[i]);
        if (d != 0 && numel > (UINT64_MAX >> 4) / (uint64_t)d)
            return g3n_error_set(err, "%s: shape overflows", name);
        numel *= (uint64_t)d;
    }
    if (max_elements > 0 && numel > (uint64_t)max_elements)
        return g3n_error_set(err, "%s: %llu elements is over the limit of %lld", name, (unsigned long long)numel,
                             (long long)max_elements);
    size_t element = g3n_dtype_size(dtype);
    if (numel * element != (uint64_t)m->data.len)
        return g3n_error_set(err, "%s: %zu data bytes, but the shape and dtype call for %llu", name, m->data.len,
                             (unsigned long long)(numel * element));
    if (m->data.len && ((uintptr_t)m->data.data % element) != 0)
        return g3n_error_set(err, "%s: data is not aligned for %s", name, g3n_dtype_name(dtype));
    g3n_tensor_view(view, dtype, ndim, m->shape, m->data.data);
    return G3N_OK;
}

void g3n_wire_error_init(G3n__Envelope *env, G3n__Error *error_body, uint64_t request_id, int code,
                         const char *message)
{
    g3n__envelope__init(env);
    g3n__error__init(error_body);
    error_body->code = (G3n__ErrorCode)code;
    error_body->message = (char *)message;
    env->request_id = request_id;
    env->body_case = G3N__ENVELOPE__BODY_ERROR;
    env->error = error_body;
}
