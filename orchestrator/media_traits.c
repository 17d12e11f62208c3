/* media_traits.c - the media kinds' table (media_traits.h). */
#include "media_traits.h"

#include <stddef.h>

#include "wire.h"

static const g3n_media_traits media_traits[G3N_MEDIA_KIND_COUNT] = {
    [G3N_MEDIA_IMAGE] = {"image", G3N_ROLE_VISION_ENCODER, G3N__ENVELOPE__BODY_ENCODE_IMAGE,
                         G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY, G3N_CHAT_IMAGE, 1},
    [G3N_MEDIA_AUDIO] = {"audio", G3N_ROLE_AUDIO_ENCODER, G3N__ENVELOPE__BODY_ENCODE_AUDIO,
                         G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY, G3N_CHAT_AUDIO, 0},
};

const g3n_media_traits *g3n_media_traits_of(g3n_media_kind kind)
{
    return (int)kind >= 0 && kind < G3N_MEDIA_KIND_COUNT ? &media_traits[kind] : NULL;
}

int g3n_media_kind_of_body(int body_case, g3n_media_kind *kind)
{
    for (int k = 0; k < G3N_MEDIA_KIND_COUNT; k++)
        if (media_traits[k].request_body == body_case || media_traits[k].reply_body == body_case) {
            *kind = (g3n_media_kind)k;
            return G3N_OK;
        }
    return G3N_ERR;
}

const G3n__Tensor *g3n_media_reply_tokens(const G3n__Envelope *reply, g3n_media_kind kind)
{
    if (!reply || reply->body_case != (G3n__Envelope__BodyCase)g3n_media_traits_of(kind)->reply_body)
        return NULL;
    return kind == G3N_MEDIA_AUDIO ? reply->encode_audio_reply->tokens : reply->encode_image_reply->tokens;
}

void g3n_media_token_shape(g3n_media_kind kind, const g3n_model_config *config, int64_t *max_rows, int64_t *width)
{
    if (kind == G3N_MEDIA_AUDIO) {
        *max_rows = config->audio_soft_tokens_per_image;
        *width = config->audio_hidden_size;
    } else {
        *max_rows = config->vision_soft_tokens_per_image;
        *width = config->vision_hidden_size;
    }
}
