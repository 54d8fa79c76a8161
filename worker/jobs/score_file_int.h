/* score_file_int.h - the parts of `streamscore score-file`: score_file.c reads the options,
 * opens the inputs and outputs and reports; score_file_run.c reads the inputs in chunks,
 * scores each chunk on every thread (a customer's records all on one thread, in file order)
 * and writes the chunk's records in input order. */
#ifndef SS_SCORE_FILE_INT_H
#define SS_SCORE_FILE_INT_H

#include <jansson.h>
#include <pthread.h>

#include "file_in.h"
#include "file_out.h"
#include "job.h"
#include "producer.h"
#include "progress.h"
#include "scorer.h"

#define SF_CHUNK 8192 /* records read before they are scored: the memory bound */

/* One record of the chunk. */
typedef struct sf_rec {
    int input;
    long index;
    const char *reason; /* a dead letter's (static), NULL: scored */
    int owner;          /* the thread that scores it */
    int late;           /* dead-lettered while scored: its detail in its owner's buffer */
    size_t cust_off, cust_len, evid_off, evid_len, detail_off; /* in the chunk's arena */
    int64_t event_time;
    size_t out_off, out_len; /* its encoded prediction in its owner's buffer */
} sf_rec_t;

/* A chunk of records: read and decoded by the main thread, scored by the threads, written by
 * the main thread. Two of them: one is read (and then written) while the other is scored. */
typedef struct sf_chunk {
    sf_rec_t *recs;
    size_t n_recs;
    float *feats; /* per record: the event's features */
    char *arena;  /* ids and decode details */
    size_t arena_len, arena_cap;
    char **out; /* per thread: the chunk's encoded predictions and scoring details */
    size_t *out_len, *out_cap;
} sf_chunk_t;

typedef struct sf_thread {
    struct sf *sf;
    int index;
    pthread_t tid;
    ss_scorer_t *scorer;
    ss_encoder_t *enc;
    rd_kafka_message_t *fake; /* per batch record: its input and index, for explain.sample */
    int rc;
    char err[1024];
} sf_thread_t;

typedef struct sf {
    const ss_config_t *cfg;
    /* options */
    const char **inputs;
    int n_inputs, in_format, out_format, threads, seed, json, progress;
    const char *output, *output_topic, *model_path, *dead_letters, *codec;
    int stop; /* atomic */
    /* what it runs with */
    ss_job_t job;
    ss_producer_t *producer;
    ss_file_in_t **in;
    ss_file_out_t *out, *dlq;
    sf_thread_t *th;
    pthread_barrier_t start, done;
    int quit;
    sf_chunk_t chunks[2];
    sf_chunk_t *scoring; /* the chunk the threads score: set before they start */
    /* figures */
    long records, predictions, dead;
    json_t *reasons;
    ss_progress_t prog;
} sf_t;

/* score_file_run.c: the chunks' buffers for `threads` threads (0 or SS_ERR_NOMEM), and freed. */
int sf_chunks_new(sf_t *s, size_t n_features);
void sf_chunks_free(sf_t *s);

/* score_file_run.c: start the threads, score every input, stop the threads. Returns 0 or a
 * negative SS_ERR_* code with errstr (SS_ERR_STOPPED: a stop signal). */
int sf_run(sf_t *s, char *errstr, size_t errlen);

#endif
