/* test_rollout.c - the rollout's state (core/rollout.c): its record read and written, the
 * changes each command may make from each state, which records a reader applies, the routing
 * of customers; and the canary's figures over a sliding window (core/gates.c). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "gates.h"
#include "rollout.h"

static char err[512];
#define SHA_A "36fddad099157d397e953a5a360e4eb33d84217151ac401998ea58c88d4a1c31"
#define SHA_B "1111111111111111111111111111111111111111111111111111111111111111"

static ss_rollout_model_t model(const char *version, const char *sha) {
    ss_rollout_model_t m = {.set = 1};
    snprintf(m.name, sizeof(m.name), "churn");
    snprintf(m.version, sizeof(m.version), "%s", version);
    snprintf(m.sha256, sizeof(m.sha256), "%s", sha);
    snprintf(m.path, sizeof(m.path), "/models/candidate/churn-%s.json", version);
    return m;
}

static void a_record_written_reads_back_the_same(void) {
    ss_rollout_state_t none, s, back;
    ss_rollout_init(&none);
    ss_rollout_model_t c = model("1.1.0", SHA_A);
    CHECK(ss_rollout_start(&none, &c, 0.05, &s, err, sizeof(err)) == 0);
    ss_rollout_stamp(&s, "first canary \"quoted\"", "alice@host", 0, 1733400000000);
    char *text = ss_rollout_dump(&s, "churn-primary", 0);
    CHECK(text != NULL);
    CHECK_STR_CONTAINS(text, "\"share\":0.05,"); /* not 0.050000000000000003 */
    CHECK(ss_rollout_parse(text, strlen(text), &back, err, sizeof(err)) == 0);
    CHECK(back.phase == SS_ROLLOUT_CANARY && back.share == 0.05);
    CHECK(strcmp(back.candidate.sha256, SHA_A) == 0 && back.candidate.set && !back.live.set);
    CHECK(strcmp(back.reason, "first canary \"quoted\"") == 0);
    CHECK(strcmp(back.by, "alice@host") == 0 && back.at == 1733400000000 && !back.automatic);
    CHECK(back.base == -1);
    free(text);
}

static void records_that_cannot_be_understood_are_refused_with_the_reason(void) {
    ss_rollout_state_t s;
    const char *bad[][2] = {
        {"not json", "not JSON"},
        {"{\"format\":2}", "format 1"},
        {"{\"format\":1,\"state\":\"canary\",\"share\":0.5}", "needs a candidate"},
        {"{\"format\":1,\"state\":\"paused\",\"share\":0}", "'state' must be"},
        {"{\"format\":1,\"state\":\"shadow\",\"share\":2,\"candidate\":{\"name\":\"a\","
         "\"version\":\"1\",\"sha256\":\"" SHA_A "\",\"path\":\"/m\"}}",
         "'share' must be"},
        {"{\"format\":1,\"state\":\"shadow\",\"share\":0,\"candidate\":{\"name\":\"a\","
         "\"version\":\"1\",\"sha256\":\"ABC\",\"path\":\"/m\"}}",
         "64 lower-case hex"},
        {"{\"format\":1,\"state\":\"canary\",\"share\":0,\"candidate\":{\"name\":\"a\","
         "\"version\":\"1\",\"sha256\":\"" SHA_A "\",\"path\":\"/m\"}}",
         "share above 0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK(ss_rollout_parse(bad[i][0], strlen(bad[i][0]), &s, err, sizeof(err)) ==
              SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, bad[i][1]);
    }
}

static void each_command_is_allowed_only_from_the_states_it_fits(void) {
    ss_rollout_state_t none, shadow, canary, promoted, back, undone, x;
    ss_rollout_init(&none);
    ss_rollout_model_t c = model("1.1.0", SHA_A);
    CHECK(ss_rollout_step(&none, 0.25, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK_STR_CONTAINS(err, "no candidate was started");
    CHECK(ss_rollout_promote(&none, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_rollout_rollback(&none, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_rollout_start(&none, &c, 0, &shadow, err, sizeof(err)) == 0);
    CHECK(shadow.phase == SS_ROLLOUT_SHADOW && shadow.share == 0);
    shadow.offset = 4;
    CHECK(ss_rollout_start(&shadow, &c, 0.05, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    CHECK(ss_rollout_step(&shadow, 0.25, &canary, err, sizeof(err)) == 0);
    CHECK(canary.phase == SS_ROLLOUT_CANARY && canary.share == 0.25 && canary.base == 4);
    canary.offset = 5;
    CHECK(ss_rollout_promote(&canary, &promoted, err, sizeof(err)) == 0);
    CHECK(promoted.phase == SS_ROLLOUT_PROMOTED && !promoted.candidate.set);
    CHECK(promoted.live.set && strcmp(promoted.live.sha256, SHA_A) == 0 && !promoted.previous.set);
    promoted.offset = 6;
    CHECK(ss_rollout_step(&promoted, 0.5, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    /* a rollback after a promote: the live model before it (the configured one) */
    CHECK(ss_rollout_rollback(&promoted, &back, err, sizeof(err)) == 0);
    CHECK(back.phase == SS_ROLLOUT_ROLLED_BACK && !back.live.set && back.share == 0);
    back.offset = 7;
    CHECK(ss_rollout_rollback(&back, &x, err, sizeof(err)) == SS_ERR_CONFIG);
    /* a second candidate after a promote, rolled back: the promoted one stays live */
    ss_rollout_model_t d = model("1.2.0", SHA_B);
    CHECK(ss_rollout_start(&promoted, &d, 0.05, &canary, err, sizeof(err)) == 0);
    canary.offset = 8;
    CHECK(ss_rollout_rollback(&canary, &undone, err, sizeof(err)) == 0);
    CHECK(undone.live.set && strcmp(undone.live.version, "1.1.0") == 0);
}

static void an_automatic_change_made_from_an_older_state_is_skipped(void) {
    ss_rollout_state_t cur, next;
    ss_rollout_init(&cur);
    ss_rollout_init(&next);
    next.automatic = 1;
    next.base = 3;
    CHECK(ss_rollout_accepts(&cur, &next)); /* nothing applied yet: the record is the state */
    cur.phase = SS_ROLLOUT_CANARY;
    cur.offset = 3;
    CHECK(ss_rollout_accepts(&cur, &next));
    cur.offset = 4; /* a command came between */
    CHECK(!ss_rollout_accepts(&cur, &next));
    next.base = 5; /* a restatement after a skipped record */
    CHECK(ss_rollout_accepts(&cur, &next));
    next.automatic = 0;
    next.base = 0; /* a command always */
    CHECK(ss_rollout_accepts(&cur, &next));
}

static void steps_parse_and_the_next_step_is_the_first_above(void) {
    double st[SS_ROLLOUT_MAX_STEPS];
    CHECK(ss_rollout_parse_steps("0.05, 0.25,0.5,1", st, SS_ROLLOUT_MAX_STEPS, err, sizeof(err)) ==
          4);
    CHECK(ss_rollout_next_step(st, 4, 0) == 0.05);
    CHECK(ss_rollout_next_step(st, 4, 0.05) == 0.25);
    CHECK(ss_rollout_next_step(st, 4, 0.3) == 0.5);
    CHECK(ss_rollout_next_step(st, 4, 1) == -1);
    const char *bad[] = {"", "0.5,0.25", "0,1", "1.5", "0.1;0.2", "a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ss_rollout_parse_steps(bad[i], st, SS_ROLLOUT_MAX_STEPS, err, sizeof(err)) ==
              SS_ERR_CONFIG);
        CHECK_STR_CONTAINS(err, "rollout.steps");
    }
}

/* Known answers from an independent implementation of the documented function (Python, in
 * docs/rollout.md). */
static void a_customers_bucket_is_the_documented_function(void) {
    CHECK(ss_rollout_bucket(SHA_A, "C000100", 7) == 81);
    CHECK(ss_rollout_bucket(SHA_A, "C000123", 7) == 1455);
    CHECK(ss_rollout_bucket(SHA_A, "customer-42", 11) == 3931);
    CHECK(ss_rollout_bucket(SHA_A, "", 0) == 8399);
    CHECK(ss_rollout_bucket("", "x", 1) == 3705);
}

static void shares_are_sticky_monotone_and_close_to_their_value(void) {
    char id[32];
    const double shares[] = {0.05, 0.25, 0.5, 1};
    long in[4] = {0}, n = 20000;
    uint64_t salted = ss_rollout_salt(SHA_B);
    for (long i = 0; i < n; i++) {
        int len = snprintf(id, sizeof(id), "C%06ld", i);
        uint32_t b = ss_rollout_bucket_of(salted, id, (size_t)len);
        CHECK(b == ss_rollout_bucket(SHA_B, id, (size_t)len));
        int prev = 0;
        for (int k = 0; k < 4; k++) {
            int canary = b < ss_rollout_buckets(shares[k]);
            CHECK(canary >= prev); /* in a smaller share, in every larger one */
            prev = canary;
            in[k] += canary;
        }
    }
    for (int k = 0; k < 4; k++)
        CHECK(fabs((double)in[k] / (double)n - shares[k]) < 0.01);
    CHECK(ss_rollout_buckets(0) == 0 && ss_rollout_buckets(1) == SS_ROUTE_BUCKETS);
}

static void the_gates_see_the_window_and_forget_what_left_it(void) {
    ss_gates_t *g = ss_gates_new(10000); /* slots of 1 s */
    ss_gate_tally_t t;
    ss_gate_figures_t f;
    ss_gate_tally_clear(&t);
    t.records = 100;
    t.errors = 10;
    for (int i = 0; i < 100; i++)
        ss_gate_tally_latency(&t, i < 90 ? 0.01 : 2.0);
    for (int i = 0; i < 1000; i++) /* the candidate scores 0.3 above the live model */
        ss_gate_tally_shift(&t, (i % 100) / 100.0 * 0.7 + 0.3, (i % 100) / 100.0);
    ss_gates_add(g, SS_ROUTE_CANARY, &t, 100000);
    ss_gates_figures(g, SS_ROUTE_CANARY, 105000, &f);
    CHECK(f.records == 100 && f.errors == 10 && fabs(f.error_rate - 0.1) < 1e-12);
    CHECK(f.latency_p95 >= 2.0 && f.latency_p95 < 2.5); /* the bin holding 2 s */
    CHECK(f.shift_pairs == 1000 && f.shift_psi > 1);
    CHECK(isnan(f.roc_auc));
    ss_gates_figures(g, SS_ROUTE_LIVE, 105000, &f);
    CHECK(f.records == 0 && isnan(f.error_rate) && isnan(f.latency_p95));
    ss_gates_figures(g, SS_ROUTE_CANARY, 111000, &f); /* the window moved past it */
    CHECK(f.records == 0);
    /* like scores: no shift; a perfect ranking: ROC-AUC 1, a reversed one 0 */
    ss_gate_tally_clear(&t);
    for (int i = 0; i < 1000; i++) {
        ss_gate_tally_shift(&t, (i % 97) / 97.0, (i % 97) / 97.0);
        ss_gate_tally_label(&t, i / 1000.0, i >= 500);
    }
    ss_gates_add(g, SS_ROUTE_CANARY, &t, 200000);
    ss_gates_figures(g, SS_ROUTE_CANARY, 200000, &f);
    CHECK(fabs(f.shift_psi) < 1e-9 && f.labelled == 1000 && f.roc_auc > 0.99);
    ss_gates_reset(g);
    ss_gate_tally_clear(&t);
    for (int i = 0; i < 1000; i++)
        ss_gate_tally_label(&t, i / 1000.0, i < 500);
    ss_gates_add(g, SS_ROUTE_LIVE, &t, 200000);
    ss_gates_figures(g, SS_ROUTE_LIVE, 200000, &f);
    CHECK(f.roc_auc < 0.01);
    ss_gates_destroy(g);
}

static const check_test_t tests[] = {
    {"a_record_written_reads_back_the_same", a_record_written_reads_back_the_same},
    {"records_that_cannot_be_understood_are_refused_with_the_reason",
     records_that_cannot_be_understood_are_refused_with_the_reason},
    {"each_command_is_allowed_only_from_the_states_it_fits",
     each_command_is_allowed_only_from_the_states_it_fits},
    {"an_automatic_change_made_from_an_older_state_is_skipped",
     an_automatic_change_made_from_an_older_state_is_skipped},
    {"steps_parse_and_the_next_step_is_the_first_above",
     steps_parse_and_the_next_step_is_the_first_above},
    {"a_customers_bucket_is_the_documented_function",
     a_customers_bucket_is_the_documented_function},
    {"shares_are_sticky_monotone_and_close_to_their_value",
     shares_are_sticky_monotone_and_close_to_their_value},
    {"the_gates_see_the_window_and_forget_what_left_it",
     the_gates_see_the_window_and_forget_what_left_it},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
