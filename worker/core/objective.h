/* objective.h - what a model's objective makes of its outputs: the task (binary, multi-class,
 * regression, ranking, survival), how many values it predicts per row and what each is, which
 * one is the record's score, and whether the objective defines a decision. Read from the
 * booster's own configuration; an objective streamscore does not know is refused by name. */
#ifndef SS_OBJECTIVE_H
#define SS_OBJECTIVE_H

#include <stddef.h>

typedef enum {
    SS_TASK_BINARY,     /* binary:logistic, binary:logitraw, binary:hinge */
    SS_TASK_MULTICLASS, /* multi:softprob, multi:softmax */
    SS_TASK_REGRESSION, /* reg:*, count:poisson */
    SS_TASK_RANKING,    /* rank:* */
    SS_TASK_SURVIVAL,   /* survival:cox, survival:aft */
} ss_task_t;

/* "binary", "multiclass", "regression", "ranking", "survival". */
const char *ss_task_name(int task);

typedef struct ss_objective {
    char name[64];            /* e.g. "multi:softprob" */
    int task;                 /* ss_task_t */
    size_t n_outputs;         /* values per row: classes, quantiles or targets (1 for most) */
    char **output_names;      /* n_outputs: the class index, "q" and the quantile, or the target */
    size_t score_output;      /* the output that is the record's score: the quantile 0.5 when there
                                 is one, else the first (multi-class: the predicted class's) */
    int softmax;              /* multi:softmax: margins are predicted, the probabilities computed
                                 here (XGBoost's own output is the class index alone) */
    double default_threshold; /* binary: 0.5 (binary:logitraw: 0, a margin); NaN: none */
} ss_objective_t;

/* The objectives served, one name per line as the docs list them ("binary:logistic\n..."). */
const char *ss_objective_served(void);

/* The task of objective `name`, or -1 when it is not served. */
int ss_objective_task(const char *name);

/* When XGBoost cannot read a model file: the objective of a JSON model (`len` bytes), when
 * it names one streamscore does not serve, is refused with one line naming it and `path`
 * (XGBoost's own message names neither). UBJSON and unreadable text pass (0): XGBoost's
 * message stands. Returns 0 or SS_ERR_CONFIG with errstr. */
int ss_objective_peek(const unsigned char *bytes, size_t len, const char *path, char *errstr,
                      size_t errlen);

/* The objective of a loaded booster (BoosterHandle), from XGBoosterSaveJsonConfig. Returns 0,
 * SS_ERR_CONFIG with errstr naming the objective and `path` when it is not served or its
 * configuration is malformed, or SS_ERR_NOMEM. */
int ss_objective_read(void *booster, const char *path, ss_objective_t *o, char *errstr,
                      size_t errlen);
void ss_objective_clear(ss_objective_t *o);

/* From one row of `n_outputs` raw values (XGBoost's output; margins for softmax): the
 * probabilities in place for softmax, then the predicted class (argmax, the first of equal
 * values; -1 when the task is not multi-class) and the score. */
void ss_objective_finish_row(const ss_objective_t *o, float *row, double *score, int *cls);

#endif
