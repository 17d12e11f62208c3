/* media_kind.h - the kinds of media a prompt holds beside text. One enum for
 * every layer (the embedder's soft-token segments, the orchestrator's media
 * files); what differs between the kinds on the orchestrator's side is a table
 * (orchestrator/media_traits.h). */
#ifndef G3N_MEDIA_KIND_H
#define G3N_MEDIA_KIND_H

typedef enum g3n_media_kind {
    G3N_MEDIA_IMAGE = 0, /* zero: a zeroed struct holding a kind is an image */
    G3N_MEDIA_AUDIO = 1,
    G3N_MEDIA_KIND_COUNT
} g3n_media_kind;

#endif
