/* media_traits.h - the kinds of media a prompt holds (images, audio:
 * media_kind.h) as one table. What differs between them (the encoder role
 * that encodes them, the envelope bodies of its request and reply, the
 * placeholder in the chat template, the shape of the tokens the config
 * allows) is looked up here instead of being an `is_audio` branch at each use,
 * so that a new modality is a row here plus its encoder role.
 *
 * Ownership: the table is static; nothing to free. */
#ifndef G3N_MEDIA_TRAITS_H
#define G3N_MEDIA_TRAITS_H

#include <stdint.h>

#include "chat_template.h"
#include "config.h"
#include "g3n.pb-c.h"
#include "media_kind.h"
#include "status.h"


typedef struct g3n_media_traits {
    const char *name;          /* "image", "audio": in messages */
    int role;                  /* the encoder role (G3N_ROLE_... of transport.h) */
    int request_body;          /* G3n__Envelope body case of its encode request */
    int reply_body;            /* and of the reply */
    g3n_chat_item_type item;   /* its placeholder in the chat template */
    int exact_rows;            /* 1: every item has max_rows tokens (images); 0: at most (audio) */
} g3n_media_traits;

/* The row of a kind (NULL for a value out of range). */
const g3n_media_traits *g3n_media_traits_of(g3n_media_kind kind);
/* The kind whose request or reply body this is: G3N_OK, or G3N_ERR for another body. */
int g3n_media_kind_of_body(int body_case, g3n_media_kind *kind);
/* The tokens tensor of an encode reply of that kind (NULL when absent). */
const G3n__Tensor *g3n_media_reply_tokens(const G3n__Envelope *reply, g3n_media_kind kind);
/* Tokens per item (exact or at most, per exact_rows) and their width, from the config. */
void g3n_media_token_shape(g3n_media_kind kind, const g3n_model_config *config, int64_t *max_rows, int64_t *width);

#endif
