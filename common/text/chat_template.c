/* chat_template.c - the Gemma 3n chat template (chat_template.jinja) and the
 * Gemma3nProcessor placeholder expansion, in C. See chat_template.h. */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

/* The names the processor writes for the multimodal tokens. */
static const char BOS_TEXT[] = "<bos>";
static const char BOI_TEXT[] = "<start_of_image>";
static const char EOI_TEXT[] = "<end_of_image>";
static const char IMAGE_TEXT[] = "<image_soft_token>";
static const char BOA_TEXT[] = "<start_of_audio>";
static const char EOA_TEXT[] = "<end_of_audio>";
static const char AUDIO_TEXT[] = "<audio_soft_token>";

void g3n_chat_special_ids_from_config(g3n_chat_special_ids *ids, const g3n_model_config *config)
{
    ids->bos_token_id = config->text.bos_token_id;
    ids->boi_token_id = config->boi_token_id;
    ids->eoi_token_id = config->eoi_token_id;
    ids->image_token_id = config->image_token_id;
    ids->boa_token_id = config->boa_token_id;
    ids->eoa_token_id = config->eoa_token_id;
    ids->audio_token_id = config->audio_token_id;
    ids->vision_soft_tokens_per_image = config->vision_soft_tokens_per_image;
    ids->audio_soft_tokens_per_image = config->audio_soft_tokens_per_image;
}

typedef struct growing_text {
    char *data;
    size_t length, capacity;
} growing_text;

static int text_add(growing_text *b, const char *data, size_t length, g3n_error *err)
{
    if (b->length + length + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 256;
        while (capacity < b->length + length + 1)
            capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown)
            return g3n_error_set(err, "chat template: out of memory (%zu bytes)", capacity);
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, data, length);
    b->length += length;
    b->data[b->length] = '\0';
    return G3N_OK;
}

static int text_add_string(growing_text *b, const char *s, g3n_error *err)
{
    return text_add(b, s, strlen(s), err);
}

/* Python str.isspace() code points (what Jinja's trim strips). */
static int is_python_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Decodes one UTF-8 character of valid text; returns its length. */
static size_t next_char(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if ((s[0] & 0xF0) == 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
          (s[3] & 0x3F);
    return 4;
}

/* Jinja `| trim`: the span of text without leading/trailing white space. */
static void trim_span(const char *text, size_t length, size_t *start, size_t *end)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, last_end = 0;
    *start = length;
    while (i < length) {
        uint32_t cp;
        size_t n = next_char(s + i, &cp);
        if (!is_python_space(cp)) {
            if (*start == length)
                *start = i;
            last_end = i + n;
        }
        i += n;
    }
    *end = *start == length ? length : last_end;
}

typedef struct renderer {
    const g3n_tokenizer *tokenizer;
    growing_text text;    /* the whole prompt */
    growing_text pending; /* text not yet encoded (since the last multimodal token) */
    g3n_token_ids *ids;
} renderer;

static int emit_text(renderer *r, const char *s, size_t length, g3n_error *err)
{
    if (text_add(&r->text, s, length, err) != G3N_OK)
        return G3N_ERR;
    return r->tokenizer ? text_add(&r->pending, s, length, err) : G3N_OK;
}

static int flush_pending(renderer *r, g3n_error *err)
{
    if (!r->tokenizer || r->pending.length == 0)
        return G3N_OK;
    int status = g3n_tokenizer_encode(r->tokenizer, r->pending.data, r->pending.length, 0, r->ids, err);
    r->pending.length = 0;
    return status;
}

/* A token whose id comes from the config, written by name in the text. */
static int emit_token(renderer *r, const char *name, int32_t id, g3n_error *err)
{
    if (text_add_string(&r->text, name, err) != G3N_OK)
        return G3N_ERR;
    if (!r->tokenizer)
        return G3N_OK;
    if (flush_pending(r, err) != G3N_OK)
        return G3N_ERR;
    return g3n_token_ids_append(r->ids, id, err);
}

/* Gemma3nProcessor.full_image_sequence / full_audio_sequence */
static int emit_media(renderer *r, int32_t begin_id, const char *begin, int32_t soft_id, const char *soft,
                      int64_t count, int32_t end_id, const char *end, g3n_error *err)
{
    if (emit_text(r, "\n\n", 2, err) != G3N_OK || emit_token(r, begin, begin_id, err) != G3N_OK)
        return G3N_ERR;
    for (int64_t k = 0; k < count; k++)
        if (emit_token(r, soft, soft_id, err) != G3N_OK)
            return G3N_ERR;
    if (emit_token(r, end, end_id, err) != G3N_OK || emit_text(r, "\n\n", 2, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

static int render(renderer *r, const g3n_chat_special_ids *special, const g3n_chat_message *messages,
                  int message_count, int add_generation_prompt, g3n_chat_prompt *out, g3n_error *err)
{
    if (message_count <= 0 || !messages)
        return g3n_error_set(err, "chat template: no messages");
    /* {{ bos_token }} */
    if (emit_token(r, BOS_TEXT, special->bos_token_id, err) != G3N_OK)
        return G3N_ERR;
    /* an optional system message becomes first_user_prefix */
    const char *system_text = NULL;
    int first = 0;
    if (messages[0].role && strcmp(messages[0].role, "system") == 0) {
        if (messages[0].item_count != 1 || !messages[0].items || messages[0].items[0].type != G3N_CHAT_TEXT ||
            !messages[0].items[0].text)
            return g3n_error_set(err, "chat template: messages[0] (system) must hold exactly one text item");
        system_text = messages[0].items[0].text;
        first = 1;
        if (message_count == 1)
            return g3n_error_set(err, "chat template: the system message must be followed by a user turn");
    }
    for (int m = first; m < message_count; m++) {
        const g3n_chat_message *message = &messages[m];
        const char *role = message->role ? message->role : "(null)";
        int index = m - first;
        int is_user = strcmp(role, "user") == 0;
        int is_model = strcmp(role, "model") == 0 || strcmp(role, "assistant") == 0;
        if (!is_user && !is_model)
            return g3n_error_set(err, "chat template: messages[%d] has role '%s' (expected user, model or assistant%s)",
                                 m, role, m == 0 ? " or a first system message" : "");
        if (is_user != (index % 2 == 0))
            return g3n_error_set(err,
                                 "chat template: messages[%d] has role '%s': conversation roles must alternate "
                                 "user/model/user/model/... starting with user",
                                 m, role);
        if (emit_text(r, "<start_of_turn>", 15, err) != G3N_OK ||
            emit_text(r, is_user ? "user\n" : "model\n", is_user ? 5 : 6, err) != G3N_OK)
            return G3N_ERR;
        if (m == first && system_text) {
            if (emit_text(r, system_text, strlen(system_text), err) != G3N_OK || emit_text(r, "\n\n", 2, err) != G3N_OK)
                return G3N_ERR;
        }
        if (message->item_count > 0 && !message->items)
            return g3n_error_set(err, "chat template: messages[%d] has no items array", m);
        for (int i = 0; i < message->item_count; i++) {
            const g3n_chat_item *item = &message->items[i];
            int status;
            switch (item->type) {
            case G3N_CHAT_TEXT: {
                if (!item->text)
                    return g3n_error_set(err, "chat template: messages[%d].items[%d] is text without text", m, i);
                size_t length = strlen(item->text), start, end;
                if (!g3n_utf8_valid(item->text, length))
                    return g3n_error_set(err, "chat template: messages[%d].items[%d] is not valid UTF-8", m, i);
                trim_span(item->text, length, &start, &end);
                status = emit_text(r, item->text + start, end - start, err);
                break;
            }
            case G3N_CHAT_IMAGE:
                status = emit_media(r, special->boi_token_id, BOI_TEXT, special->image_token_id, IMAGE_TEXT,
                                    special->vision_soft_tokens_per_image, special->eoi_token_id, EOI_TEXT, err);
                out->image_count++;
                break;
            case G3N_CHAT_AUDIO:
                status = emit_media(r, special->boa_token_id, BOA_TEXT, special->audio_token_id, AUDIO_TEXT,
                                    special->audio_soft_tokens_per_image, special->eoa_token_id, EOA_TEXT, err);
                out->audio_count++;
                break;
            default:
                return g3n_error_set(err, "chat template: messages[%d].items[%d] has unknown type %d", m, i,
                                     (int)item->type);
            }
            if (status != G3N_OK)
                return G3N_ERR;
        }
        if (emit_text(r, "<end_of_turn>\n", 14, err) != G3N_OK)
            return G3N_ERR;
    }
    if (add_generation_prompt && emit_text(r, "<start_of_turn>model\n", 21, err) != G3N_OK)
        return G3N_ERR;
    return flush_pending(r, err);
}

int g3n_chat_template_apply(const g3n_tokenizer *tokenizer, const g3n_chat_special_ids *special,
                            const g3n_chat_message *messages, int message_count, int add_generation_prompt,
                            g3n_chat_prompt *out, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (special->vision_soft_tokens_per_image < 0 || special->audio_soft_tokens_per_image < 0)
        return g3n_error_set(err, "chat template: negative soft token counts");
    renderer r = {.tokenizer = tokenizer, .ids = &out->ids};
    int status = render(&r, special, messages, message_count, add_generation_prompt, out, err);
    free(r.pending.data);
    if (status != G3N_OK) {
        free(r.text.data);
        g3n_chat_prompt_free(out);
        return G3N_ERR;
    }
    out->text = r.text.data;
    out->text_length = r.text.length;
    return G3N_OK;
}

void g3n_chat_prompt_free(g3n_chat_prompt *prompt)
{
    free(prompt->text);
    g3n_token_ids_free(&prompt->ids);
    memset(prompt, 0, sizeof(*prompt));
}
