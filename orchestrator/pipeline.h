/* pipeline.h - the orchestrator's work, over any broker (threads over
 * inproc:// in `g3n run`, daemons over tcp:// in g3n-orchestrator):
 *
 *   chat request -> chat template + tokenizer -> images and audio to their
 *   encoder pools in parallel -> embedder merges ids and soft tokens ->
 *   prefill on a decoder (the session then stays on that worker) -> per step:
 *   embedder embeds the picked token, the same decoder runs one position ->
 *   detokenized text streamed to a callback.
 *
 * Also the pieces on their own (encode media, generate from ids), so checks
 * and tools can drive the daemons with their own ids and media.
 *
 * Threads: one g3n_client per calling thread; several chats may run at once
 * on different threads (each has its own decoder session).
 */
#ifndef G3N_PIPELINE_H
#define G3N_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "config.h"
#include "generate.h"
#include "media_traits.h"
#include "roles.h"
#include "status.h"
#include "tokenizer.h"
#include "transport.h"

/* Encoded media in prompt order: the encoders' replies (owned envelopes). */
typedef struct g3n_pipeline_media {
    G3n__Envelope **replies; /* EncodeImageReply / EncodeAudioReply envelopes */
    int count;
    double seconds;          /* wall time of the parallel encoding */
    char (*workers)[64];     /* [count]: the worker that answered each (NULL when not known) */
} g3n_pipeline_media;
void g3n_pipeline_media_free(g3n_pipeline_media *media); /* accepts a zeroed struct */

typedef struct g3n_media_file {
    g3n_media_kind kind;    /* G3N_MEDIA_IMAGE (0) or G3N_MEDIA_AUDIO */
    const void *bytes;      /* the file's contents, borrowed */
    size_t size;
    const char *name;       /* for messages */
    const float *samples;   /* audio given as 16 kHz mono samples instead of file bytes (one window at most:
                               g3n_pipeline_window_media), borrowed; NULL: bytes */
    int64_t sample_count;
} g3n_media_file;

/* Audio longer than the audio encoder's window (the feature extractor's
 * max_samples: 30 s at 16 kHz) is not cut: as g3n's offline encoding does
 * (audio_stream.h), every audio file is decoded here (FFmpeg, 16 kHz mono) and
 * split into windows of max_samples, each encoded on its own and each its own
 * audio segment in the prompt; a last window shorter than one frame is
 * zero-padded to one frame. Images pass through (bytes borrowed). At most
 * G3N_PIPELINE_MAX_SEGMENTS entries in all (64 windows: 32 minutes). */
#define G3N_PIPELINE_MAX_SEGMENTS 64
typedef struct g3n_pipeline_windows {
    g3n_media_file *files;  /* what to encode, in prompt order (samples and names owned here) */
    int count;
    int *segments;          /* [input count]: how many entries of files each input became */
    int input_count;
    float **buffers;        /* [input count]: the decoded audio of each audio input (owned), else NULL */
    char (*names)[96];      /* [count] */
} g3n_pipeline_windows;
/* Errors name the input as "encoding audio NAME: ERROR_BAD_REQUEST: ..." (the
 * client's media, as an encoder's refusal reads). */
int g3n_pipeline_window_media(const g3n_media_file *files, int count, g3n_pipeline_windows *out, g3n_error *err);
void g3n_pipeline_windows_free(g3n_pipeline_windows *windows); /* accepts a zeroed struct */
/* The messages with every image or audio item repeated as many times as its
 * input became segments (segments[k] for the k-th media item in message
 * order). *messages_out and *items_out are malloc'd (free both); texts borrowed. */
int g3n_pipeline_expand_messages(const g3n_chat_message *messages, int count, const int *segments, int input_count,
                                 g3n_chat_message **messages_out, g3n_chat_item **items_out, g3n_error *err);

typedef void (*g3n_progress_callback)(void *user, const char *line);

/* Formats one progress line (at most 511 bytes) for cb; nothing when cb is NULL. */
void g3n_pipeline_progress(g3n_progress_callback cb, void *user, const char *format, ...) G3N_PRINTF(3, 4);

/* Sends every file to its encoder pool at once (retryable requests) and
 * collects the replies in the given order. */
int g3n_pipeline_encode_media(g3n_client *client, const g3n_media_file *files, int count, g3n_pipeline_media *out,
                              g3n_progress_callback progress, void *user, g3n_error *err);
/* The same for ready-made requests (EncodeImageRequest / EncodeAudioRequest
 * envelopes, e.g. pixel_values or log-mel features computed by the caller). */
int g3n_pipeline_encode_requests(g3n_client *client, G3n__Envelope *const *requests, const char *const *names,
                                 int count, g3n_pipeline_media *out, g3n_progress_callback progress, void *user,
                                 g3n_error *err);

/* An encoder's final reply to an encode request of that kind (an
 * EncodeImageRequest or an EncodeAudioRequest): G3N_OK when it carries the encoded tokens; else an
 * error naming the request (`name`) with the worker's error or the body it
 * answered instead. */
int g3n_pipeline_check_encode_reply(const G3n__Envelope *reply, g3n_media_kind kind, const char *name,
                                    g3n_error *err);

/* Workers' numbers are not trusted: every tensor a worker answers (soft
 * tokens, embeddings, logits) is checked (dtype, rank, finite values) before
 * use, and a bad one fails the request with "bad reply from the ROLE worker
 * NAME: ..." (a server-side fault, not the client's). This checks encoded
 * media against the config's widths (vision_soft_tokens_per_image x
 * vision hidden size; at most audio_soft_tokens_per_image x audio hidden size). */
int g3n_pipeline_check_media(const g3n_pipeline_media *media, const g3n_model_config *config, g3n_error *err);

/* Who is at fault for a pipeline error message: the proto ErrorCode to answer
 * a client with (ERROR_BAD_REQUEST for the client's own media or request,
 * ERROR_NO_WORKER / ERROR_WORKER_LOST / ERROR_TOO_LARGE as the transport said,
 * else ERROR_INTERNAL: a worker's bad reply or a server fault). */
int g3n_pipeline_error_code(const char *message);

/* Called for each generated token: logits may be NULL (when not asked for);
 * return nonzero to stop. */
typedef int (*g3n_pipeline_token_callback)(void *user, int64_t step, int32_t token, const float *logits,
                                           int64_t vocab);

typedef struct g3n_pipeline_generate_params {
    int64_t max_new_tokens;
    g3n_sampling_params sampling;
    int eos_ids[G3N_MAX_EOS_IDS];
    int num_eos_ids;
    int64_t allowed_vocab;         /* <= 0: all */
    int want_logits;               /* the step logits go to on_token */
    int want_prompt_logits;        /* every prompt row's logits go to on_prompt_logits */
    void (*on_prompt_logits)(void *user, const float *logits, int64_t rows, int64_t vocab);
    const char *session_id;        /* NULL: a fresh unique one (without record) */
    const char *model;             /* MatFormer sub-model the decoder runs (its --submodel name); NULL or "":
                                      the full model */
    struct g3n_session_record *record; /* NULL: a session of its own, ended on return. Else the session to
                                      continue and keep (session_record.h): its cache holds record->ids (and
                                      record->media), the call's ids and media follow them; it is continued on
                                      record->decoder (an append), or opened there first when it holds nothing,
                                      or rebuilt on another decoder when that one or the session is lost. On
                                      G3N_OK the session stays open and the record holds the prompt and the
                                      tokens fed back (the caller adopts the call's media into it); on G3N_ERR
                                      end and free it. Prompt logits are not given then. */
    int64_t session_positions;     /* with record: the context a new session is opened with (at least what
                                      the call needs) */
    struct g3n_prefix_cache *prefix_cache; /* decoders out of room: its least recently used kept session is
                                      ended and the prefill tried again (NULL: none) */
    g3n_pipeline_token_callback on_token;
    void *user;
    g3n_progress_callback progress;
    void *progress_user;
} g3n_pipeline_generate_params;

/* Defaults from the config: eos ids, allowed_vocab = vocab_size_per_layer_input, greedy, 32 tokens. */
g3n_pipeline_generate_params g3n_pipeline_default_params(const g3n_model_config *config);

typedef struct g3n_pipeline_stats {
    int64_t prompt_tokens, generated_tokens;
    double encode_seconds, embed_seconds, prefill_seconds, decode_seconds;
    double decoder_step_seconds;   /* of decode_seconds: the decoder's own time in its decode steps (as it
                                      reports them); the rest is the embedder, the transport and this side */
    double decode_embed_seconds;   /* of decode_seconds: the embed calls of the decode steps, as this side
                                      waits for them (the embedder's work and its transport) */
    int stopped_on_eos;
    char decoder[64];              /* the worker that held the session */
    int64_t reused_tokens;         /* prompt positions a continued session already held (not prefilled) */
    int rebuilds;                  /* times the session was rebuilt on another decoder (its own was lost) */
    double first_token_seconds;    /* g3n_pipeline_conversation: its start to the first token */
} g3n_pipeline_stats;

/* Prompt ids (with image/audio placeholders) + encoded media -> generated tokens. */
int g3n_pipeline_generate(g3n_client *client, const int32_t *ids, int64_t count, const g3n_pipeline_media *media,
                          const g3n_pipeline_generate_params *params, g3n_pipeline_stats *stats, g3n_error *err);

/* Appends ids (with their media: media->replies[media_from..], whole placeholder runs) to the session of
 * record without generating: on record->decoder when it holds positions, else opened (max_positions) on any
 * decoder with record->ids, then ids (media->replies[0..] being every medium of both, in order); a session
 * found lost is rebuilt that way (stats->rebuilds, params->progress). params gives sampling, model and
 * progress. On G3N_OK record->ids holds the new positions; the caller adopts media[media_from..]. */
int g3n_pipeline_session_append(g3n_client *client, const g3n_pipeline_generate_params *params,
                                struct g3n_session_record *record, const g3n_pipeline_media *media, int media_from,
                                const int32_t *ids, int64_t count, int64_t max_positions, g3n_pipeline_stats *stats,
                                g3n_error *err);

typedef struct g3n_chat_input {
    const char *system;            /* may be NULL */
    const char *prompt;            /* the user's text */
    const g3n_media_file *media;   /* images and clips of the user turn, in order, before the text */
    int media_count;
} g3n_chat_input;

/* on_text gets each complete UTF-8 piece as it is produced (length may be 0). */
typedef int (*g3n_text_callback)(void *user, const char *text, size_t length);

/* g3n_pipeline_generate with its tokens as text: each token is detokenized
 * (tokenizer borrowed) and on_text gets each non-empty piece, then
 * params->on_token the token; after the last one, what the detokenizer still
 * holds. Either callback returning nonzero stops the generation. */
int g3n_pipeline_generate_text(g3n_client *client, const g3n_tokenizer *tokenizer, const int32_t *ids, int64_t count,
                               const g3n_pipeline_media *media, const g3n_pipeline_generate_params *params,
                               g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats,
                               g3n_error *err);

int g3n_pipeline_chat(g3n_client *client, const g3n_model_config *config, const g3n_tokenizer *tokenizer,
                      const g3n_chat_input *input, const g3n_pipeline_generate_params *params,
                      g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats, g3n_error *err);

/* The worker roles as threads of this process, connected to broker over endpoint
 * (an inproc:// endpoint the broker bound). */
typedef struct g3n_local_roles {
    g3n_role *roles[G3N_ROLE_COUNT];
    g3n_worker *workers[G3N_ROLE_COUNT];
} g3n_local_roles;
/* Handler threads (requests served at once) of a role's worker there
 * (g3n_role_ops.capacity: the decoder's one per session it may hold, the
 * embedder's 2, the towers' 1). */
int g3n_local_role_capacity(int role, const g3n_role_options *options);
/* role_mask: bit (1 << role) for each role to start. */
int g3n_local_roles_start(g3n_local_roles *local, g3n_broker *broker, const char *endpoint, g3n_weights *weights,
                          const g3n_model_config *config, const g3n_role_options *options, unsigned role_mask,
                          const g3n_transport_options *transport, g3n_error *err);
void g3n_local_roles_stop(g3n_local_roles *local);

#endif
