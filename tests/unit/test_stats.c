/* test_stats.c - the statistics of the reports on small cases whose results are known
 * independently: worked out by hand here (numpy, scipy and scikit-learn give the same). */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "stats.h"

static int near(double a, double b) {
    return fabs(a - b) <= 1e-12;
}

static void quantile_interpolates_linearly_between_order_statistics(void) {
    const double a[4] = {1, 2, 3, 4}, b[5] = {10, 20, 30, 40, 50};
    CHECK(near(ss_stats_quantile(a, 4, 0.5), 2.5));   /* h = 1.5 */
    CHECK(near(ss_stats_quantile(a, 4, 0.25), 1.75)); /* h = 0.75 */
    CHECK(near(ss_stats_quantile(a, 4, 0.99), 3.97)); /* h = 2.97: np.percentile(a, 99) */
    CHECK(near(ss_stats_quantile(b, 5, 0.25), 20));   /* h = 1: an order statistic */
    CHECK(near(ss_stats_quantile(b, 5, 0.9), 46));    /* h = 3.6 */
}

static void quantile_ends_are_the_minimum_and_the_maximum(void) {
    const double a[3] = {-2, 5, 9}, one[1] = {7};
    CHECK(ss_stats_quantile(a, 3, 0) == -2);
    CHECK(ss_stats_quantile(a, 3, 1) == 9);
    CHECK(ss_stats_quantile(one, 1, 0.99) == 7);
    CHECK(isnan(ss_stats_quantile(a, 0, 0.5)));
}

static void sort_orders_ascending(void) {
    double v[5] = {3, -1, 2, 2, 0};
    ss_stats_sort(v, 5);
    CHECK(v[0] == -1 && v[1] == 0 && v[2] == 2 && v[3] == 2 && v[4] == 3);
}

static void roc_auc_is_one_when_separated_and_zero_when_reversed(void) {
    double pos[2] = {0.9, 0.8}, neg[2] = {0.1, 0.2};
    CHECK(ss_stats_roc_auc(pos, 2, neg, 2) == 1.0);
    double pos2[2] = {0.1, 0.2}, neg2[2] = {0.9, 0.8};
    CHECK(ss_stats_roc_auc(pos2, 2, neg2, 2) == 0.0);
}

static void roc_auc_counts_tied_pairs_half(void) {
    double pos[2] = {0.5, 0.5}, neg[1] = {0.5};
    CHECK(ss_stats_roc_auc(pos, 2, neg, 1) == 0.5);
    double p2[1] = {0.5}, n2[2] = {0.5, 0.2}; /* one tie, one in order: 1.5 / 2 */
    CHECK(ss_stats_roc_auc(p2, 1, n2, 2) == 0.75);
}

static void roc_auc_is_the_share_of_ordered_pairs(void) {
    /* pairs (0.8, 0.5) (0.8, 0.1) (0.4, 0.1) in order, (0.4, 0.5) not: 3 of 4 */
    double pos[2] = {0.8, 0.4}, neg[2] = {0.5, 0.1};
    CHECK(ss_stats_roc_auc(pos, 2, neg, 2) == 0.75);
}

static void roc_auc_needs_both_classes(void) {
    double pos[2] = {0.8, 0.4};
    CHECK(isnan(ss_stats_roc_auc(pos, 2, NULL, 0)));
    CHECK(isnan(ss_stats_roc_auc(NULL, 0, pos, 2)));
}

static void spearman_of_a_monotone_and_a_reversed_relation(void) {
    const double up[8] = {1, 10, 2, 20, 3, 35, 4, 90}, down[6] = {1, 3, 2, 2, 3, 1};
    double rho;
    CHECK(ss_stats_spearman(up, 4, &rho) == 0 && near(rho, 1));
    CHECK(ss_stats_spearman(down, 3, &rho) == 0 && near(rho, -1));
}

static void spearman_with_swaps_and_ties(void) {
    /* ranks differ by d = (0, 1, -1, 0): 1 - 6 * 2 / (4 * 15) = 0.8 */
    const double swap[8] = {1, 1, 2, 3, 3, 2, 4, 4};
    /* x ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5) */
    const double tie[8] = {1, 1, 2, 2, 2, 3, 3, 4};
    double rho;
    CHECK(ss_stats_spearman(swap, 4, &rho) == 0 && near(rho, 0.8));
    CHECK(ss_stats_spearman(tie, 4, &rho) == 0 && near(rho, 4.5 / sqrt(22.5)));
}

static void spearman_is_undefined_without_variation_or_pairs(void) {
    const double flat[6] = {1, 5, 2, 5, 3, 5};
    double rho = 0;
    CHECK(ss_stats_spearman(flat, 3, &rho) == 0 && isnan(rho));
    CHECK(ss_stats_spearman(flat, 1, &rho) == 0 && isnan(rho));
}

static void precision_recall_f1_and_their_undefined_value(void) {
    double p, r, f;
    ss_stats_prf(2, 1, 1, NAN, &p, &r, &f);
    CHECK(near(p, 2.0 / 3) && near(r, 2.0 / 3) && near(f, 2.0 / 3));
    ss_stats_prf(3, 1, 0, NAN, &p, &r, &f);
    CHECK(near(p, 0.75) && r == 1 && near(f, 6.0 / 7));
    ss_stats_prf(0, 0, 3, NAN, &p, &r, &f); /* no positive decision */
    CHECK(isnan(p) && r == 0 && isnan(f));
    ss_stats_prf(0, 0, 3, 0, &p, &r, &f); /* scikit-learn's zero_division=0 */
    CHECK(p == 0 && r == 0 && f == 0);
}

static void bin_clamps_to_the_edge_bins(void) {
    CHECK(ss_stats_bin(-0.5, 0, 1, 20) == 0);
    CHECK(ss_stats_bin(0.55, 0, 1, 20) == 11);
    CHECK(ss_stats_bin(1.0, 0, 1, 20) == 19);
    CHECK(ss_stats_bin(7.0, 0, 1, 20) == 19);
    CHECK(ss_stats_bin(3.0, 2, 2, 20) == 0); /* no width */
}

static void binned_quantile_lands_within_one_bin(void) {
    /* 0..9, one a bin over [0, 10]: order statistic k is estimated at k + 0.5 (its bin's
     * middle), so the median is 5.0 where the exact one is 4.5 */
    uint64_t h[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(near(ss_stats_quantile_binned(h, 10, 0, 10, 10, 0.5), 5.0));
    CHECK(near(ss_stats_quantile_binned(h, 10, 0, 10, 10, 0), 0.5));
    CHECK(isnan(ss_stats_quantile_binned(h, 10, 0, 10, 0, 0.5)));
}

static void binned_roc_auc_ties_values_of_one_bin(void) {
    /* positives in bins 8 and 4, negatives in bins 5 and 1: 3 of 4 pairs in order */
    uint64_t pos[10] = {0}, neg[10] = {0};
    pos[8] = pos[4] = neg[5] = neg[1] = 1;
    CHECK(ss_stats_roc_auc_binned(pos, neg, 10) == 0.75);
    uint64_t same_p[2] = {0, 2}, same_n[2] = {0, 1}; /* all in one bin: ties */
    CHECK(ss_stats_roc_auc_binned(same_p, same_n, 2) == 0.5);
    uint64_t none[2] = {0, 0};
    CHECK(isnan(ss_stats_roc_auc_binned(same_p, none, 2)));
}

static void binned_ranks_are_the_mean_rank_of_each_bin(void) {
    uint64_t h[4] = {2, 0, 1, 3};
    double rank[4];
    ss_stats_ranks_binned(h, 4, rank);
    CHECK(rank[0] == 1.5 && rank[2] == 3 && rank[3] == 5); /* ranks 1-2, 3, 4-6 */
}

static const check_test_t tests[] = {
    {"quantile_interpolates_linearly_between_order_statistics",
     quantile_interpolates_linearly_between_order_statistics},
    {"quantile_ends_are_the_minimum_and_the_maximum",
     quantile_ends_are_the_minimum_and_the_maximum},
    {"sort_orders_ascending", sort_orders_ascending},
    {"roc_auc_is_one_when_separated_and_zero_when_reversed",
     roc_auc_is_one_when_separated_and_zero_when_reversed},
    {"roc_auc_counts_tied_pairs_half", roc_auc_counts_tied_pairs_half},
    {"roc_auc_is_the_share_of_ordered_pairs", roc_auc_is_the_share_of_ordered_pairs},
    {"roc_auc_needs_both_classes", roc_auc_needs_both_classes},
    {"spearman_of_a_monotone_and_a_reversed_relation",
     spearman_of_a_monotone_and_a_reversed_relation},
    {"spearman_with_swaps_and_ties", spearman_with_swaps_and_ties},
    {"spearman_is_undefined_without_variation_or_pairs",
     spearman_is_undefined_without_variation_or_pairs},
    {"precision_recall_f1_and_their_undefined_value",
     precision_recall_f1_and_their_undefined_value},
    {"bin_clamps_to_the_edge_bins", bin_clamps_to_the_edge_bins},
    {"binned_quantile_lands_within_one_bin", binned_quantile_lands_within_one_bin},
    {"binned_roc_auc_ties_values_of_one_bin", binned_roc_auc_ties_values_of_one_bin},
    {"binned_ranks_are_the_mean_rank_of_each_bin", binned_ranks_are_the_mean_rank_of_each_bin},
    {NULL, NULL}};

int main(void) {
    return check_run_all(tests);
}
