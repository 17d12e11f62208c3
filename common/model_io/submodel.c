#include "submodel.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

const char *g3n_submodel_presets(void)
{
    return "  full     every layer at its full width\n"
           "  e2b      Google's official E2B cut of E4B: the first F KV-shared layers skipped (F = the\n"
           "           attention pattern's period, 5: layers 20-24 of E4B), every MLP at half width\n"
           "  e1.96b   e2b with the first full-attention layer (4) at full width\n"
           "  e2.54b   no layer skipped; half widths except the first full-attention layer and the\n"
           "           layers e2b skips, at full width\n"
           "  (named after Google's MatFormer slicing configs for E4B; computed from the loaded config)\n";
}

void g3n_submodel_free(g3n_submodel *s)
{
    if (!s)
        return;
    free(s->layers);
    free(s->intermediate_size);
    memset(s, 0, sizeof(*s));
}

static int first_full_layer(const g3n_text_config *c)
{
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (c->layer_types[l] == G3N_LAYER_FULL)
            return l;
    return -1;
}

/* keep[l] = 1 for kept layers; width[l] for every source layer (skipped ones ignored). */
static int build(g3n_submodel *out, const char *name, const g3n_text_config *c, const int *keep, const int64_t *width,
                 g3n_error *err)
{
    const int L = c->num_hidden_layers;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->source_layers = L;
    int kept = 0;
    for (int l = 0; l < L; l++)
        kept += keep[l] != 0;
    if (kept == 0)
        return g3n_error_set(err, "sub-model '%s': every layer is skipped", name);
    for (int l = 0; l < L; l++) {
        if (!keep[l])
            continue;
        if (width[l] <= 0)
            return g3n_error_set(err, "sub-model '%s': intermediate_size of layer %d is %lld (must be positive)", name,
                                 l, (long long)width[l]);
        if (width[l] > c->intermediate_size[l])
            return g3n_error_set(err,
                                 "sub-model '%s': intermediate_size of layer %d is %lld, above the layer's %lld "
                                 "(a sub-model keeps a prefix of each layer's units)",
                                 name, l, (long long)width[l], (long long)c->intermediate_size[l]);
    }
    /* KV sharing: every kept shared layer must find the layer it reads */
    const int first_shared = L - c->num_kv_shared_layers;
    for (int l = first_shared; c->num_kv_shared_layers > 0 && l < L; l++) {
        if (!keep[l])
            continue;
        int source = g3n_text_config_kv_source_layer(c, l);
        if (source != l && !keep[source]) {
            char readers[256] = "";
            size_t used = 0;
            for (int r = first_shared; r < L && used < sizeof(readers) - 16; r++)
                if (keep[r] && g3n_text_config_kv_source_layer(c, r) == source)
                    used += (size_t)snprintf(readers + used, sizeof(readers) - used, "%s%d", used ? ", " : "", r);
            return g3n_error_set(err,
                                 "sub-model '%s': layer %d holds the KV cache that the KV-shared layers %s read; "
                                 "skipping it breaks KV sharing (keep it, or skip those layers too)",
                                 name, source, readers);
        }
    }
    out->layers = malloc(sizeof(int) * (size_t)kept);
    out->intermediate_size = malloc(sizeof(int64_t) * (size_t)kept);
    if (!out->layers || !out->intermediate_size) {
        g3n_submodel_free(out);
        return g3n_error_set(err, "out of memory");
    }
    for (int l = 0; l < L; l++)
        if (keep[l]) {
            out->layers[out->num_layers] = l;
            out->intermediate_size[out->num_layers] = width[l];
            out->num_layers++;
        }
    return G3N_OK;
}

static int preset(g3n_submodel *out, const char *name, const g3n_text_config *c, g3n_error *err)
{
    const int L = c->num_hidden_layers;
    int *keep = malloc(sizeof(int) * (size_t)L);
    int64_t *width = malloc(sizeof(int64_t) * (size_t)L);
    if (!keep || !width) {
        free(keep);
        free(width);
        return g3n_error_set(err, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        keep[l] = 1;
        width[l] = c->intermediate_size[l];
    }
    int status = G3N_OK;
    if (strcmp(name, "full") != 0) {
        const int full = first_full_layer(c), first_shared = L - c->num_kv_shared_layers;
        const int period = full + 1;
        int skip = strcmp(name, "e2b") == 0 || strcmp(name, "e1.96b") == 0;
        if (strcmp(name, "e2b") != 0 && strcmp(name, "e1.96b") != 0 && strcmp(name, "e2.54b") != 0)
            status = g3n_error_set(err, "unknown sub-model '%s' (presets: full, e2b, e1.96b, e2.54b; or a JSON "
                                        "object, or @FILE.json)",
                                   name);
        else if (full < 0)
            status = g3n_error_set(err, "sub-model preset '%s' needs a full_attention layer in the config", name);
        else if (c->num_kv_shared_layers < period)
            status = g3n_error_set(err,
                                   "sub-model preset '%s' skips %d KV-shared layers, but the config has %d", name,
                                   period, c->num_kv_shared_layers);
        for (int l = 0; status == G3N_OK && l < L; l++) {
            const int in_block = l >= first_shared && l < first_shared + period;
            if (skip && in_block)
                keep[l] = 0;
            int at_full = strcmp(name, "e2b") != 0 && l == full;
            if (strcmp(name, "e2.54b") == 0 && in_block)
                at_full = 1;
            if (!at_full)
                width[l] = c->intermediate_size[l] / 2;
        }
    }
    if (status == G3N_OK)
        status = build(out, name, c, keep, width, err);
    free(keep);
    free(width);
    return status;
}

static int is_integer(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble > -1e15 && v->valuedouble < 1e15 &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

int g3n_submodel_from_json(g3n_submodel *out, const cJSON *object, const g3n_text_config *c, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(object))
        return g3n_error_set(err, "sub-model: expected a JSON object");
    for (const cJSON *item = object->child; item; item = item->next)
        if (strcmp(item->string, "name") != 0 && strcmp(item->string, "layers_to_skip") != 0 &&
            strcmp(item->string, "intermediate_size") != 0)
            return g3n_error_set(err, "sub-model: unknown key '%s' (keys: name, layers_to_skip, intermediate_size)",
                                 item->string);
    const cJSON *name_item = cJSON_GetObjectItemCaseSensitive(object, "name");
    if (name_item && (!cJSON_IsString(name_item) || !name_item->valuestring[0] ||
                      strlen(name_item->valuestring) >= sizeof(out->name)))
        return g3n_error_set(err, "sub-model: 'name' must be a non-empty string of at most %zu characters",
                             sizeof(out->name) - 1);
    const char *name = name_item ? name_item->valuestring : "custom";
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_'))
            return g3n_error_set(err, "sub-model: 'name' may hold letters, digits, '.', '-' and '_' only");
    const int L = c->num_hidden_layers;
    int *keep = malloc(sizeof(int) * (size_t)L);
    int64_t *width = malloc(sizeof(int64_t) * (size_t)L);
    int status = G3N_ERR;
    if (!keep || !width) {
        g3n_error_set(err, "out of memory");
        goto done;
    }
    for (int l = 0; l < L; l++) {
        keep[l] = 1;
        width[l] = c->intermediate_size[l];
    }
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(object, "layers_to_skip");
    if (skip && !cJSON_IsNull(skip)) {
        if (!cJSON_IsArray(skip)) {
            g3n_error_set(err, "sub-model: 'layers_to_skip' must be a list of layer indices");
            goto done;
        }
        for (const cJSON *v = skip->child; v; v = v->next) {
            if (!is_integer(v)) {
                g3n_error_set(err, "sub-model: layers_to_skip entries must be layer indices (integers)");
                goto done;
            }
            if (v->valuedouble < 0 || v->valuedouble >= L) {
                g3n_error_set(err, "sub-model: layers_to_skip: layer %lld does not exist (the model has %d layers, "
                                   "0-%d)",
                              (long long)v->valuedouble, L, L - 1);
                goto done;
            }
            const int l = (int)v->valuedouble;
            if (!keep[l]) {
                g3n_error_set(err, "sub-model: layers_to_skip lists layer %d twice", l);
                goto done;
            }
            keep[l] = 0;
        }
    }
    int kept = 0;
    for (int l = 0; l < L; l++)
        kept += keep[l];
    const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(object, "intermediate_size");
    if (sizes && !cJSON_IsNull(sizes)) {
        if (is_integer(sizes)) {
            for (int l = 0; l < L; l++)
                width[l] = (int64_t)sizes->valuedouble;
        } else if (cJSON_IsArray(sizes)) {
            const int n = cJSON_GetArraySize(sizes);
            if (n != kept && n != L) {
                g3n_error_set(err,
                              "sub-model: intermediate_size has %d entries; give one per kept layer (%d) or one "
                              "per layer of the model (%d)",
                              n, kept, L);
                goto done;
            }
            const cJSON *v = sizes->child;
            for (int l = 0; l < L; l++) {
                if (n == kept && !keep[l])
                    continue;
                if (!is_integer(v)) {
                    g3n_error_set(err, "sub-model: intermediate_size entries must be integers");
                    goto done;
                }
                width[l] = (int64_t)v->valuedouble;
                v = v->next;
            }
        } else {
            g3n_error_set(err, "sub-model: 'intermediate_size' must be an integer or a list of integers");
            goto done;
        }
    }
    status = build(out, name, c, keep, width, err);
done:
    free(keep);
    free(width);
    return status;
}

int g3n_submodel_parse(g3n_submodel *out, const char *spec, const g3n_text_config *c, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!spec || !*spec)
        return g3n_error_set(err, "sub-model: empty spec");
    const size_t length = strlen(spec);
    const char *file = NULL;
    if (spec[0] == '@')
        file = spec + 1;
    else if (spec[0] != '{' && length > 5 && strcmp(spec + length - 5, ".json") == 0)
        file = spec;
    if (spec[0] != '{' && !file)
        return preset(out, spec, c, err);
    cJSON *object = NULL;
    if (file) {
        if (g3n_json_load_file(file, &object, err) != G3N_OK)
            return g3n_error_prefix(err, "sub-model");
    } else {
        object = cJSON_Parse(spec);
        if (!object)
            return g3n_error_set(err, "sub-model: invalid JSON '%.80s'", spec);
    }
    int status = g3n_submodel_from_json(out, object, c, err);
    cJSON_Delete(object);
    return status;
}

int g3n_submodel_is_full(const g3n_submodel *s, const g3n_text_config *c)
{
    if (s->num_layers != c->num_hidden_layers)
        return 0;
    for (int i = 0; i < s->num_layers; i++)
        if (s->layers[i] != i || s->intermediate_size[i] != c->intermediate_size[i])
            return 0;
    return 1;
}

void g3n_text_config_free_arrays(g3n_text_config *t)
{
    if (!t)
        return;
    free(t->intermediate_size);
    free(t->layer_types);
    free(t->activation_sparsity_pattern);
    t->intermediate_size = NULL;
    t->layer_types = NULL;
    t->activation_sparsity_pattern = NULL;
}

int g3n_submodel_text_config(const g3n_submodel *s, const g3n_text_config *c, g3n_text_config *out, g3n_error *err)
{
    if (s->source_layers != c->num_hidden_layers)
        return g3n_error_set(err, "sub-model '%s' was made for %d layers, the model has %d", s->name,
                             s->source_layers, c->num_hidden_layers);
    *out = *c;
    const int n = s->num_layers;
    out->num_hidden_layers = n;
    out->intermediate_size = malloc(sizeof(int64_t) * (size_t)n);
    out->layer_types = malloc(sizeof(g3n_layer_type) * (size_t)n);
    out->activation_sparsity_pattern = malloc(sizeof(double) * (size_t)n);
    if (!out->intermediate_size || !out->layer_types || !out->activation_sparsity_pattern) {
        g3n_text_config_free_arrays(out);
        return g3n_error_set(err, "out of memory");
    }
    const int first_shared = c->num_hidden_layers - c->num_kv_shared_layers;
    out->num_kv_shared_layers = 0;
    for (int i = 0; i < n; i++) {
        const int l = s->layers[i];
        out->intermediate_size[i] = s->intermediate_size[i];
        out->layer_types[i] = c->layer_types[l];
        out->activation_sparsity_pattern[i] = c->activation_sparsity_pattern[l];
        if (c->num_kv_shared_layers > 0 && l >= first_shared)
            out->num_kv_shared_layers++;
    }
    /* the transformers rule on the new list must pick the source each layer had */
    for (int i = 0; i < n; i++) {
        const int want = g3n_text_config_kv_source_layer(c, s->layers[i]);
        const int got = g3n_text_config_kv_source_layer(out, i);
        if (s->layers[got] != want) {
            g3n_text_config_free_arrays(out);
            return g3n_error_set(err, "sub-model '%s': layer %d would read the KV cache of layer %d instead of %d",
                                 s->name, s->layers[i], s->layers[got], want);
        }
    }
    return G3N_OK;
}

cJSON *g3n_submodel_config_json(const g3n_submodel *s, const g3n_text_config *c, const cJSON *root)
{
    cJSON *copy = cJSON_Duplicate(root, 1);
    if (!copy)
        return NULL;
    cJSON *text = cJSON_GetObjectItemCaseSensitive(copy, "text_config");
    if (!cJSON_IsObject(text))
        text = copy;
    const int first_shared = c->num_hidden_layers - c->num_kv_shared_layers;
    int shared = 0;
    cJSON *sizes = cJSON_CreateArray(), *types = cJSON_CreateArray(), *sparsity = cJSON_CreateArray();
    for (int i = 0; i < s->num_layers && sizes && types && sparsity; i++) {
        const int l = s->layers[i];
        cJSON_AddItemToArray(sizes, cJSON_CreateNumber((double)s->intermediate_size[i]));
        cJSON_AddItemToArray(types, cJSON_CreateString(c->layer_types[l] == G3N_LAYER_FULL ? "full_attention"
                                                                                          : "sliding_attention"));
        cJSON_AddItemToArray(sparsity, cJSON_CreateNumber(c->activation_sparsity_pattern[l]));
        shared += c->num_kv_shared_layers > 0 && l >= first_shared;
    }
    cJSON *layers = cJSON_CreateNumber(s->num_layers), *kv = cJSON_CreateNumber(shared);
    if (!sizes || !types || !sparsity || !layers || !kv) {
        cJSON_Delete(sizes);
        cJSON_Delete(types);
        cJSON_Delete(sparsity);
        cJSON_Delete(layers);
        cJSON_Delete(kv);
        cJSON_Delete(copy);
        return NULL;
    }
    static const char *const keys[5] = {"num_hidden_layers", "intermediate_size", "layer_types",
                                        "activation_sparsity_pattern", "num_kv_shared_layers"};
    cJSON *values[5] = {layers, sizes, types, sparsity, kv};
    for (int i = 0; i < 5; i++) {
        if (cJSON_GetObjectItemCaseSensitive(text, keys[i]))
            cJSON_ReplaceItemInObjectCaseSensitive(text, keys[i], values[i]);
        else
            cJSON_AddItemToObject(text, keys[i], values[i]);
    }
    return copy;
}

void g3n_submodel_describe(const g3n_submodel *s, const g3n_text_config *c, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "%s: %d of %d layers", s->name, s->num_layers, c->num_hidden_layers);
    int first_skip = 1;
    for (int l = 0, i = 0; l < c->num_hidden_layers && used < size; l++) {
        if (i < s->num_layers && s->layers[i] == l) {
            i++;
            continue;
        }
        used += (size_t)snprintf(out + used, size - used, "%s%d", first_skip ? " (skipped " : ",", l);
        first_skip = 0;
    }
    if (!first_skip && used < size)
        used += (size_t)snprintf(out + used, size - used, ")");
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < s->num_layers; i++) {
        lo = s->intermediate_size[i] < lo ? s->intermediate_size[i] : lo;
        hi = s->intermediate_size[i] > hi ? s->intermediate_size[i] : hi;
    }
    if (used < size) {
        if (lo == hi)
            snprintf(out + used, size - used, ", MLP width %lld", (long long)lo);
        else
            snprintf(out + used, size - used, ", MLP widths %lld-%lld", (long long)lo, (long long)hi);
    }
}
