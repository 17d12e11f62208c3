/* safetensors.h - mmapped safetensors files and Hugging Face checkpoint folders.
 *
 * A g3n_safetensors_file maps one file read-only and validates its header:
 * header length within the file, every tensor's dtype known, its byte range
 * inside the data section, its size equal to numel * dtype size, and no two
 * ranges overlapping. Errors name the file and the tensor.
 *
 * A g3n_checkpoint is a set of such files: a folder with
 * model.safetensors.index.json (sharded), a folder with model.safetensors, or
 * a single .safetensors file. Tensor views returned by either stay valid until
 * the file/checkpoint is closed; their data is the mapped file itself (weights
 * are never copied or converted on load).
 */
#ifndef G3N_SAFETENSORS_H
#define G3N_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"
#include "tensor.h"

typedef struct g3n_safetensors_entry {
    char *name;
    g3n_dtype dtype;
    int ndim;
    int64_t shape[G3N_MAX_DIMS];
    uint64_t begin; /* byte offsets inside the data section */
    uint64_t end;
} g3n_safetensors_entry;

typedef struct g3n_safetensors_file g3n_safetensors_file;

int g3n_safetensors_open(g3n_safetensors_file **out, const char *path, g3n_error *err);
void g3n_safetensors_close(g3n_safetensors_file *file); /* accepts NULL */
const char *g3n_safetensors_path(const g3n_safetensors_file *file);
int g3n_safetensors_count(const g3n_safetensors_file *file);
const g3n_safetensors_entry *g3n_safetensors_entry_at(const g3n_safetensors_file *file, int index);
/* NULL when absent. */
const g3n_safetensors_entry *g3n_safetensors_find(const g3n_safetensors_file *file, const char *name);
/* A borrowed view of the named tensor; error naming file and tensor if absent. */
int g3n_safetensors_get(const g3n_safetensors_file *file, const char *name, g3n_tensor *view, g3n_error *err);
/* "__metadata__" value for key, or NULL. */
const char *g3n_safetensors_metadata(const g3n_safetensors_file *file, const char *key);

typedef struct g3n_checkpoint g3n_checkpoint;

/* path: a folder (sharded via model.safetensors.index.json, or model.safetensors)
 * or one .safetensors file. Every shard is opened and validated; every tensor
 * the index names must be in the shard it names. */
int g3n_checkpoint_open(g3n_checkpoint **out, const char *path, g3n_error *err);
void g3n_checkpoint_close(g3n_checkpoint *checkpoint); /* accepts NULL */
int g3n_checkpoint_count(const g3n_checkpoint *checkpoint);
const g3n_safetensors_entry *g3n_checkpoint_entry_at(const g3n_checkpoint *checkpoint, int index);
const g3n_safetensors_entry *g3n_checkpoint_find(const g3n_checkpoint *checkpoint, const char *name);
int g3n_checkpoint_get(const g3n_checkpoint *checkpoint, const char *name, g3n_tensor *view, g3n_error *err);
/* Copies the bytes that the checkpoint maps at mapped (inside one of its files'
 * mappings) into out with pread, leaving the mapping untouched: for tables read
 * a row at a time (embeddings), whose mapped reads would make the page cache's
 * whole folio resident (2 MiB where a file is held in 2 MiB folios). 1 when
 * done; 0 when mapped is not in a file of checkpoint (may be NULL) or the read
 * failed: read the mapping instead. */
int g3n_checkpoint_read_mapped(const g3n_checkpoint *checkpoint, const void *mapped, size_t bytes, void *out);

/* Streaming writer: declare every tensor first, then write each tensor's bytes in
 * declaration order. Never holds tensor data. */
typedef struct g3n_safetensors_writer g3n_safetensors_writer;

int g3n_safetensors_writer_open(g3n_safetensors_writer **out, const char *path, g3n_error *err);
/* Declares the next tensor (before any data is written). */
int g3n_safetensors_writer_declare(g3n_safetensors_writer *w, const char *name, g3n_dtype dtype, int ndim,
                                   const int64_t *shape, g3n_error *err);
/* Appends bytes of the current tensor(s), in declaration order. The header is
 * written on the first call. */
int g3n_safetensors_writer_write(g3n_safetensors_writer *w, const void *bytes, size_t size, g3n_error *err);
/* Checks every declared byte was written, closes the file. Frees w in all cases. */
int g3n_safetensors_writer_finish(g3n_safetensors_writer *w, g3n_error *err);
/* Total data bytes declared so far. */
uint64_t g3n_safetensors_writer_data_bytes(const g3n_safetensors_writer *w);

#endif
