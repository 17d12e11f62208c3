/* The safetensors reader and writer: good files, and each kind of corruption. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "safetensors.h"
#include "test_util.h"

static char temp_dir[512];

static int setup(void **state)
{
    (void)state;
    g3n_test_temp_dir(temp_dir, sizeof(temp_dir));
    return temp_dir[0] ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    g3n_test_remove_tree(temp_dir);
    return 0;
}

/* Writes raw bytes: 8-byte little-endian header length, header, data. */
static const char *write_raw(const char *name, uint64_t declared_header_length, const char *header, const void *data,
                             size_t data_size)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s", temp_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    /* pad the header with spaces to a multiple of 8, as writers do, so the data stays aligned */
    size_t padding = (8 - strlen(header) % 8) % 8;
    if (declared_header_length == strlen(header))
        declared_header_length += padding;
    else
        padding = 0;
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)(declared_header_length >> (8 * i));
    fwrite(length, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < padding; i++)
        fputc(' ', f);
    if (data_size)
        fwrite(data, 1, data_size, f);
    fclose(f);
    return path;
}

static void expect_open_error(const char *path, const char *fragment)
{
    g3n_safetensors_file *file = NULL;
    g3n_error err = {{0}};
    assert_int_equal(g3n_safetensors_open(&file, path, &err), G3N_ERR);
    assert_null(file);
    if (!strstr(err.message, fragment))
        fail_msg("error '%s' does not mention '%s'", err.message, fragment);
    assert_non_null(strstr(err.message, path)); /* every message names the file */
}

static void test_writer_round_trip(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/round.safetensors", temp_dir);
    g3n_error err = {{0}};
    g3n_safetensors_writer *w;
    const int64_t shape_a[2] = {2, 3}, shape_b[1] = {4}, shape_c[3] = {1, 2, 1};
    assert_int_equal(g3n_safetensors_writer_open(&w, path, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_declare(w, "a", G3N_DTYPE_F32, 2, shape_a, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_declare(w, "b", G3N_DTYPE_BF16, 1, shape_b, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_declare(w, "c", G3N_DTYPE_I32, 3, shape_c, &err), G3N_OK);
    const float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = g3n_f32_to_bf16((float)i * 0.5f);
    const int32_t c[2] = {-7, 9};
    /* write in uneven pieces: the writer only counts bytes */
    assert_int_equal(g3n_safetensors_writer_write(w, a, 10, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_write(w, (const char *)a + 10, sizeof(a) - 10, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_write(w, b, sizeof(b), &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_write(w, c, sizeof(c), &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_finish(w, &err), G3N_OK);

    g3n_safetensors_file *file;
    assert_int_equal(g3n_safetensors_open(&file, path, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_count(file), 3);
    g3n_tensor t;
    assert_int_equal(g3n_safetensors_get(file, "a", &t, &err), G3N_OK);
    assert_int_equal(t.dtype, G3N_DTYPE_F32);
    assert_true(g3n_tensor_has_shape(&t, 2, shape_a));
    assert_memory_equal(t.data, a, sizeof(a));
    assert_int_equal((uintptr_t)t.data % 8, 0); /* data section stays aligned */
    assert_int_equal(g3n_safetensors_get(file, "b", &t, &err), G3N_OK);
    float bf[4];
    g3n_convert_to_f32(t.dtype, t.data, bf, 4);
    assert_true(bf[3] == 1.5f);
    assert_int_equal(g3n_safetensors_get(file, "c", &t, &err), G3N_OK);
    assert_int_equal(((int32_t *)t.data)[0], -7);
    assert_string_equal(g3n_safetensors_metadata(file, "format"), "pt");
    assert_int_equal(g3n_safetensors_get(file, "missing", &t, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "missing"));
    g3n_safetensors_close(file);
}

static void test_writer_refuses_short_data(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/short.safetensors", temp_dir);
    g3n_error err = {{0}};
    g3n_safetensors_writer *w;
    const int64_t shape[1] = {4};
    assert_int_equal(g3n_safetensors_writer_open(&w, path, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_declare(w, "x", G3N_DTYPE_F32, 1, shape, &err), G3N_OK);
    const float x[4] = {0};
    assert_int_equal(g3n_safetensors_writer_write(w, x, 8, &err), G3N_OK);
    assert_int_equal(g3n_safetensors_writer_finish(w, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "declared"));
}

static void test_good_hand_written_file(void **state)
{
    (void)state;
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"F16\",\"shape\":[2],"
                         "\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[4,5]}}";
    const uint16_t data[3] = {0x3c00, 0xc000, 0x00ff}; /* 1.0, -2.0, one byte 0xff */
    const char *path = write_raw("good.safetensors", strlen(header), header, data, 5);
    g3n_safetensors_file *file;
    g3n_error err = {{0}};
    assert_int_equal(g3n_safetensors_open(&file, path, &err), G3N_OK);
    g3n_tensor t;
    assert_int_equal(g3n_safetensors_get(file, "x", &t, &err), G3N_OK);
    float v[2];
    g3n_convert_to_f32(t.dtype, t.data, v, 2);
    assert_true(v[0] == 1.0f && v[1] == -2.0f);
    assert_int_equal(g3n_safetensors_get(file, "y", &t, &err), G3N_OK);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(*(uint8_t *)t.data, 0xff);
    g3n_safetensors_close(file);
}

static void test_truncated_file(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    const float data[2] = {1, 2};
    expect_open_error(write_raw("truncated.safetensors", strlen(header), header, data, 8), "'x'");
}

static void test_header_length_beyond_file(void **state)
{
    (void)state;
    const char *header = "{}";
    expect_open_error(write_raw("hugeheader.safetensors", 1u << 20, header, NULL, 0), "header size");
}

static void test_tiny_file(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tiny.safetensors", temp_dir);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    expect_open_error(path, "too short");
}

static void test_corrupt_header_json(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"sha";
    expect_open_error(write_raw("badjson.safetensors", strlen(header), header, NULL, 0), "JSON");
}

static void test_size_mismatch(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    const float data[3] = {0};
    expect_open_error(write_raw("mismatch.safetensors", strlen(header), header, data, 12), "'x'");
}

static void test_unknown_dtype(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    const char data[1] = {0};
    expect_open_error(write_raw("dtype.safetensors", strlen(header), header, data, 1), "dtype");
}

static void test_overlapping_tensors(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    const float data[3] = {0};
    expect_open_error(write_raw("overlap.safetensors", strlen(header), header, data, 12), "overlap");
}

static void test_negative_shape(void **state)
{
    (void)state;
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}";
    const float data[1] = {0};
    expect_open_error(write_raw("negative.safetensors", strlen(header), header, data, 4), "shape");
}

/* The format allows a header not padded to 8 bytes and tensors off their
 * element boundary: such tensors are read (through an aligned copy), with the
 * values the file holds. */
static void test_misaligned_data(void **state)
{
    (void)state;
    const float values[3] = {1.5f, -2.25f, 3.0f};
    const uint16_t half = 0x3c00; /* f16 1.0 */
    /* header of 75 bytes (not a multiple of 8), written without padding: x at data offset 0 is off by 3 */
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                         "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[13,15]}}";
    assert_int_not_equal(strlen(header) % 8, 0);
    char path[1024];
    snprintf(path, sizeof(path), "%s/unpadded.safetensors", temp_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)strlen(header) >> (8 * i));
    fwrite(length, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    unsigned char data[15] = {0};
    memcpy(data, values, 12);
    memcpy(data + 13, &half, 2); /* odd offset inside the data section too */
    fwrite(data, 1, sizeof(data), f);
    fclose(f);
    g3n_safetensors_file *file;
    g3n_error err = {{0}};
    if (g3n_safetensors_open(&file, path, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_tensor t;
    assert_int_equal(g3n_safetensors_get(file, "x", &t, &err), G3N_OK);
    assert_int_equal((uintptr_t)t.data % 4, 0);
    assert_memory_equal(t.data, values, sizeof(values));
    assert_int_equal(g3n_safetensors_get(file, "h", &t, &err), G3N_OK);
    assert_int_equal((uintptr_t)t.data % 2, 0);
    float v;
    g3n_convert_to_f32(t.dtype, t.data, &v, 1);
    assert_true(v == 1.0f);
    g3n_safetensors_close(file);
    /* and as a checkpoint */
    g3n_checkpoint *checkpoint;
    assert_int_equal(g3n_checkpoint_open(&checkpoint, path, &err), G3N_OK);
    assert_int_equal(g3n_checkpoint_get(checkpoint, "x", &t, &err), G3N_OK);
    assert_memory_equal(t.data, values, sizeof(values));
    g3n_checkpoint_close(checkpoint);
}

static void test_missing_file(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/does-not-exist.safetensors", temp_dir);
    expect_open_error(path, "No such file");
}

/* temp_dir/name, made, into folder. */
static void make_folder(const char *name, char *folder, size_t size)
{
    snprintf(folder, size, "%s/%s", temp_dir, name);
    assert_true(mkdir(folder, 0755) == 0 || errno == EEXIST);
}

static void test_checkpoint_index_points_to_wrong_shard(void **state)
{
    (void)state;
    char folder[1024], path[1200];
    make_folder("sharded", folder, sizeof(folder));
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    const float data[1] = {3.0f};
    char name[64];
    snprintf(name, sizeof(name), "sharded/model-00001-of-00001.safetensors");
    write_raw(name, strlen(header), header, data, 4);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", folder);
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{},\"weight_map\":{\"x\":\"model-00001-of-00001.safetensors\"}}", f);
    fclose(f);
    g3n_checkpoint *checkpoint;
    g3n_error err = {{0}};
    assert_int_equal(g3n_checkpoint_open(&checkpoint, folder, &err), G3N_OK);
    g3n_tensor t;
    assert_int_equal(g3n_checkpoint_get(checkpoint, "x", &t, &err), G3N_OK);
    assert_true(*(float *)t.data == 3.0f);
    g3n_checkpoint_close(checkpoint);

    f = fopen(path, "w");
    fputs("{\"metadata\":{},\"weight_map\":{\"x\":\"model-00001-of-00001.safetensors\","
          "\"z\":\"model-00001-of-00001.safetensors\"}}",
          f);
    fclose(f);
    assert_int_equal(g3n_checkpoint_open(&checkpoint, folder, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "'z'"));

    f = fopen(path, "w");
    fputs("{\"metadata\":{},\"weight_map\":{\"x\":\"../escape.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(g3n_checkpoint_open(&checkpoint, folder, &err), G3N_ERR);
}

/* g3n_checkpoint_read_mapped: a row of a tensor read with pread equals what the
 * mapping holds there; a pointer outside every file, a range running past a
 * file's end and no checkpoint read nothing. */
static void test_read_mapped(void **state)
{
    (void)state;
    char folder[1024];
    make_folder("rows", folder, sizeof(folder));
    const char *header = "{\"table\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]}}";
    const float data[12] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};
    write_raw("rows/model.safetensors", strlen(header), header, data, sizeof(data));
    g3n_checkpoint *checkpoint;
    g3n_error err = {{0}};
    assert_int_equal(g3n_checkpoint_open(&checkpoint, folder, &err), G3N_OK);
    g3n_tensor t;
    assert_int_equal(g3n_checkpoint_get(checkpoint, "table", &t, &err), G3N_OK);
    const float *mapped = t.data;
    float row[3] = {-1, -1, -1};
    assert_int_equal(g3n_checkpoint_read_mapped(checkpoint, mapped + 6, sizeof(row), row), 1);
    assert_memory_equal(row, data + 6, sizeof(row));
    assert_int_equal(g3n_checkpoint_read_mapped(checkpoint, mapped + 9, sizeof(row), row), 1);
    assert_memory_equal(row, data + 9, sizeof(row));
    const float outside[3] = {0, 0, 0};
    assert_int_equal(g3n_checkpoint_read_mapped(checkpoint, outside, sizeof(row), row), 0);
    assert_int_equal(g3n_checkpoint_read_mapped(checkpoint, mapped + 11, sizeof(row), row), 0); /* past the end */
    assert_int_equal(g3n_checkpoint_read_mapped(NULL, mapped, sizeof(row), row), 0);
    g3n_checkpoint_close(checkpoint);
}

static void test_empty_folder(void **state)
{
    (void)state;
    g3n_checkpoint *checkpoint;
    g3n_error err = {{0}};
    assert_int_equal(g3n_checkpoint_open(&checkpoint, temp_dir, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "model.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_read_mapped),
        cmocka_unit_test(test_writer_refuses_short_data),
        cmocka_unit_test(test_good_hand_written_file),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_header_length_beyond_file),
        cmocka_unit_test(test_tiny_file),
        cmocka_unit_test(test_corrupt_header_json),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_overlapping_tensors),
        cmocka_unit_test(test_negative_shape),
        cmocka_unit_test(test_misaligned_data),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_checkpoint_index_points_to_wrong_shard),
        cmocka_unit_test(test_empty_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
