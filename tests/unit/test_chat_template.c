/* The Gemma 3n chat template: system + user, multi-turn, image and audio
 * placeholders, role errors and the generation prompt. Every expected token
 * sequence is written out by hand (ids of the real vocabulary, from
 * tests/fixtures/tokenizer: e.g. the encode case
 * "<start_of_turn>user\nWhat is in this image?<end_of_turn>\n<start_of_turn>model\n"
 * gives 105 2364 107 ... 106 107 105 4368 107). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_template.h"
#include "config.h"
#include "test_util.h"

/* Ids of the real Gemma 3 vocabulary used below. */
enum {
    BOS = 2,
    START_TURN = 105, /* <start_of_turn> */
    END_TURN = 106,   /* <end_of_turn> */
    NL = 107,         /* "\n" */
    NL2 = 108,        /* "\n\n" */
    NL3 = 109,        /* "\n\n\n" ("user\n" then a media item's "\n\n") */
    NL4 = 110,        /* "\n\n\n\n" (an image after a blank line merges into one token) */
    USER = 2364,
    MODEL = 4368,
};

/* Gemma 3n's real multimodal ids (config.json of the released checkpoints),
 * with small placeholder counts so the sequences can be written out. */
static const g3n_chat_special_ids real_ids = {
    .bos_token_id = 2,
    .boi_token_id = 255999,
    .eoi_token_id = 262144,
    .image_token_id = 262145,
    .boa_token_id = 256000,
    .eoa_token_id = 262272,
    .audio_token_id = 262273,
    .vision_soft_tokens_per_image = 4,
    .audio_soft_tokens_per_image = 3,
};

static g3n_tokenizer *tokenizer;

static int load_tokenizer(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    if (g3n_tokenizer_load(&tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof(path)), &err) !=
        G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return 0;
}

static int free_tokenizer(void **state)
{
    (void)state;
    g3n_tokenizer_free(tokenizer);
    return 0;
}

static void assert_ids(const g3n_chat_prompt *p, const int32_t *expected, int64_t count)
{
    if (p->ids.count != count) {
        for (int64_t i = 0; i < p->ids.count; i++)
            fprintf(stderr, "%d ", p->ids.ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(p->ids.count, count);
    for (int64_t i = 0; i < count; i++) {
        if (p->ids.ids[i] != expected[i])
            fprintf(stderr, "id %lld: got %d, expected %d\n", (long long)i, p->ids.ids[i], expected[i]);
        assert_int_equal(p->ids.ids[i], expected[i]);
    }
}

static void test_system_and_user(void **state)
{
    (void)state;
    g3n_chat_item system[] = {{G3N_CHAT_TEXT, "You are terse."}};
    g3n_chat_item user[] = {{G3N_CHAT_TEXT, "  Hi there \n"}}; /* trimmed */
    g3n_chat_message messages[] = {{"system", system, 1}, {"user", user, 1}};
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(tokenizer, &real_ids, messages, 2, 1, &p, &err), G3N_OK);
    assert_string_equal(p.text, "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
                                "<start_of_turn>model\n");
    assert_int_equal(p.text_length, strlen(p.text));
    const int32_t expected[] = {BOS, START_TURN, USER, NL, 3048 /* You */, 659 /* ▁are */, 17514 /* ▁terse */,
                                236761 /* . */, NL2, 10979 /* Hi */, 993 /* ▁there */, END_TURN, NL,
                                START_TURN, MODEL, NL};
    assert_ids(&p, expected, sizeof(expected) / sizeof(expected[0]));
    g3n_chat_prompt_free(&p);
}

static void test_multi_turn_with_image_and_audio(void **state)
{
    (void)state;
    g3n_chat_item u1[] = {{G3N_CHAT_TEXT, "Hi there"}};
    g3n_chat_item m1[] = {{G3N_CHAT_TEXT, "Hello."}};
    g3n_chat_item u2[] = {{G3N_CHAT_TEXT, "What is this?"},
                          {G3N_CHAT_IMAGE, NULL},
                          {G3N_CHAT_AUDIO, NULL},
                          {G3N_CHAT_TEXT, " Describe both."}};
    g3n_chat_message messages[] = {{"user", u1, 1}, {"assistant", m1, 1}, {"user", u2, 4}};
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(tokenizer, &real_ids, messages, 3, 1, &p, &err), G3N_OK);
    assert_string_equal(p.text,
                        "<bos><start_of_turn>user\nHi there<end_of_turn>\n"
                        "<start_of_turn>model\nHello.<end_of_turn>\n"
                        "<start_of_turn>user\nWhat is this?\n\n<start_of_image>"
                        "<image_soft_token><image_soft_token><image_soft_token><image_soft_token>"
                        "<end_of_image>\n\n\n\n<start_of_audio>"
                        "<audio_soft_token><audio_soft_token><audio_soft_token>"
                        "<end_of_audio>\n\nDescribe both.<end_of_turn>\n<start_of_turn>model\n");
    assert_int_equal(p.image_count, 1);
    assert_int_equal(p.audio_count, 1);
    const int32_t expected[] = {
        BOS, START_TURN, USER, NL, 10979 /* Hi */, 993 /* ▁there */, END_TURN, NL,
        START_TURN, MODEL, NL, 9259 /* Hello */, 236761 /* . */, END_TURN, NL,
        START_TURN, USER, NL, 3689 /* What */, 563 /* ▁is */, 672 /* ▁this */, 236881 /* ? */,
        NL2, 255999, 262145, 262145, 262145, 262145, 262144, /* boi, 4 x image, eoi */
        NL4, 256000, 262273, 262273, 262273, 262272,          /* "\n\n\n\n", boa, 3 x audio, eoa */
        NL2, 82858 /* Describe */, 1800 /* ▁both */, 236761 /* . */, END_TURN, NL,
        START_TURN, MODEL, NL};
    assert_ids(&p, expected, sizeof(expected) / sizeof(expected[0]));
    g3n_chat_prompt_free(&p);
}

static void test_generation_prompt_off(void **state)
{
    (void)state;
    g3n_chat_item u1[] = {{G3N_CHAT_TEXT, "Hi there"}};
    g3n_chat_item m1[] = {{G3N_CHAT_TEXT, "Hello."}};
    g3n_chat_message messages[] = {{"user", u1, 1}, {"model", m1, 1}};
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(tokenizer, &real_ids, messages, 2, 0, &p, &err), G3N_OK);
    assert_string_equal(p.text, "<bos><start_of_turn>user\nHi there<end_of_turn>\n"
                                "<start_of_turn>model\nHello.<end_of_turn>\n");
    const int32_t expected[] = {BOS, START_TURN, USER, NL, 10979, 993, END_TURN, NL,
                                START_TURN, MODEL, NL, 9259, 236761, END_TURN, NL};
    assert_ids(&p, expected, sizeof(expected) / sizeof(expected[0]));
    g3n_chat_prompt_free(&p);
}

/* A system prompt followed by an image: "\n\n" + "\n\n" becomes one token. */
static void test_system_then_two_images(void **state)
{
    (void)state;
    g3n_chat_item system[] = {{G3N_CHAT_TEXT, "You are terse."}};
    g3n_chat_item user[] = {{G3N_CHAT_IMAGE, NULL}, {G3N_CHAT_IMAGE, NULL}};
    g3n_chat_message messages[] = {{"system", system, 1}, {"user", user, 2}};
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(tokenizer, &real_ids, messages, 2, 0, &p, &err), G3N_OK);
    const int32_t expected[] = {BOS, START_TURN, USER, NL, 3048, 659, 17514, 236761,
                                NL4, 255999, 262145, 262145, 262145, 262145, 262144,
                                NL4, 255999, 262145, 262145, 262145, 262145, 262144,
                                NL2, END_TURN, NL};
    assert_ids(&p, expected, sizeof(expected) / sizeof(expected[0]));
    assert_int_equal(p.image_count, 2);
    g3n_chat_prompt_free(&p);
}

static void expect_error(const g3n_chat_message *messages, int count, const char *needle)
{
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(tokenizer, &real_ids, messages, count, 1, &p, &err), G3N_ERR);
    if (!strstr(err.message, needle))
        fprintf(stderr, "message: %s\n", err.message);
    assert_non_null(strstr(err.message, needle));
    assert_null(p.text);
    assert_int_equal(p.ids.count, 0);
}

static void test_role_errors(void **state)
{
    (void)state;
    g3n_chat_item text[] = {{G3N_CHAT_TEXT, "x"}};
    g3n_chat_message two_users[] = {{"user", text, 1}, {"user", text, 1}};
    expect_error(two_users, 2, "must alternate");
    g3n_chat_message model_first[] = {{"model", text, 1}};
    expect_error(model_first, 1, "must alternate");
    g3n_chat_message tool[] = {{"user", text, 1}, {"tool", text, 1}};
    expect_error(tool, 2, "role 'tool'");
    g3n_chat_message late_system[] = {{"user", text, 1}, {"system", text, 1}};
    expect_error(late_system, 2, "role 'system'");
    g3n_chat_message system_only[] = {{"system", text, 1}};
    expect_error(system_only, 1, "followed by a user turn");
    expect_error(two_users, 0, "no messages");
}

/* A synthetic vocabulary (mm-tiny's config.json): ids come from the config. */
static void test_synthetic_ids_from_config(void **state)
{
    (void)state;
    char path[1024];
    g3n_model_config config;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&config, g3n_test_fixture("mm-tiny/config.json", path, sizeof(path)), &err),
                     G3N_OK);
    g3n_chat_special_ids ids;
    g3n_chat_special_ids_from_config(&ids, &config);
    g3n_config_free(&config);
    assert_int_equal(ids.boi_token_id, 255);
    assert_int_equal(ids.image_token_id, 513);
    assert_int_equal(ids.audio_soft_tokens_per_image, 48);
    g3n_chat_item user[] = {{G3N_CHAT_AUDIO, NULL}, {G3N_CHAT_IMAGE, NULL}, {G3N_CHAT_TEXT, "Hi there"}};
    g3n_chat_message messages[] = {{"user", user, 3}};
    g3n_chat_prompt p;
    assert_int_equal(g3n_chat_template_apply(tokenizer, &ids, messages, 1, 1, &p, &err), G3N_OK);
    /* bos, <start_of_turn> user "\n\n\n" (the turn's "\n" and the audio's "\n\n" are one token), boa,
     * 48 x audio, eoa, "\n\n\n\n", boi, 256 x image, eoi, "\n\n", Hi ▁there, <end_of_turn> "\n",
     * <start_of_turn> model "\n" */
    int32_t expected[5 + 48 + 1 + 1 + 1 + 256 + 1 + 8];
    int64_t n = 0;
    const int32_t head[] = {BOS, START_TURN, USER, NL3, 256};
    for (size_t k = 0; k < sizeof(head) / sizeof(head[0]); k++)
        expected[n++] = head[k];
    for (int k = 0; k < 48; k++)
        expected[n++] = 577;
    expected[n++] = 576;
    expected[n++] = NL4;
    expected[n++] = 255;
    for (int k = 0; k < 256; k++)
        expected[n++] = 513;
    expected[n++] = 512;
    const int32_t tail[] = {NL2, 10979, 993, END_TURN, NL, START_TURN, MODEL, NL};
    for (size_t k = 0; k < sizeof(tail) / sizeof(tail[0]); k++)
        expected[n++] = tail[k];
    assert_int_equal(n, (int64_t)(sizeof(expected) / sizeof(expected[0])));
    assert_ids(&p, expected, n);
    g3n_chat_prompt_free(&p);
}

static void test_text_only_without_tokenizer(void **state)
{
    (void)state;
    g3n_chat_item user[] = {{G3N_CHAT_TEXT, "\t\u3000Hi\u00a0"}}; /* Python str.strip() white space */
    g3n_chat_message messages[] = {{"user", user, 1}};
    g3n_chat_prompt p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_chat_template_apply(NULL, &real_ids, messages, 1, 1, &p, &err), G3N_OK);
    assert_string_equal(p.text, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    assert_int_equal(p.ids.count, 0);
    g3n_chat_prompt_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_system_and_user),
        cmocka_unit_test(test_multi_turn_with_image_and_audio),
        cmocka_unit_test(test_generation_prompt_off),
        cmocka_unit_test(test_system_then_two_images),
        cmocka_unit_test(test_role_errors),
        cmocka_unit_test(test_synthetic_ids_from_config),
        cmocka_unit_test(test_text_only_without_tokenizer),
    };
    return cmocka_run_group_tests(tests, load_tokenizer, free_tokenizer);
}
