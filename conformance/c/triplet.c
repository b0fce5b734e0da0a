/* The masked batch-all triplet loss of the seed program (conformance/c/seed_program.c),
 * rewritten for the conformance suite: batch and vector sizes at run time, 64-bit labels,
 * float64 throughout, and the analytic gradient.
 *
 * Input (stdin or the file named by argv[1]), whitespace separated:
 *     batch_all B D margin squared(0|1)
 *     B labels (decimal int64)
 *     B*D embeddings, row by row (decimal, e.g. printf "%.17g")
 * Output: lines "loss X", "fraction_positive X", "num_positive N", "num_valid N",
 * "printed <the seed program's line>", then "gradient" and B lines of D values.
 *
 * Differences from the seed, on purpose: distances are sqrt(sum (a_k - b_k)^2) rather than
 * |a|^2 - 2ab + |b|^2 (no cancellation, so equal rows give exactly 0); where a distance is
 * 0 its (sub)gradient is taken as 0; counts are 64-bit. The loss is the seed's: the sum of
 * hinges over valid triples divided by (positive count + 1e-12).
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIVIDE_SAFE 1e-12

static void die(const char *message) {
    fprintf(stderr, "triplet: %s\n", message);
    exit(2);
}

static void *alloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size);
    if (!p) die("out of memory");
    return p;
}

/* distances[i*b + j] = |e_i - e_j| (or its square) */
static void pairwise_distance(int b, int dim, const double *e, double *distances, bool squared) {
    for (int i = 0; i < b; i++) {
        for (int j = 0; j < b; j++) {
            double sum = 0.0;
            for (int k = 0; k < dim; k++) {
                double diff = e[(size_t)i * dim + k] - e[(size_t)j * dim + k];
                sum += diff * diff;
            }
            distances[(size_t)i * b + j] = squared ? sum : sqrt(sum);
        }
    }
}

/* The seed's get_triplet_mask, one triple at a time (no B^3 array). */
static bool valid_triplet(const int64_t *labels, int i, int j, int k) {
    bool distinct_indices = i != j && i != k && j != k;
    bool valid_labels = labels[i] == labels[j] && labels[i] != labels[k];
    return distinct_indices && valid_labels;
}

struct result {
    double loss, fraction_positive;
    long long num_positive, num_valid;
};

/* coeff[i*b + j] accumulates d loss / d distance(i, j) before the division. */
static struct result triplet_loss(int b, const int64_t *labels, const double *distances,
                                  double margin, double *coeff) {
    struct result r = {0.0, 0.0, 0, 0};
    double cost = 0.0;
    for (int i = 0; i < b; i++) {          /* anchor */
        for (int j = 0; j < b; j++) {      /* positive */
            for (int k = 0; k < b; k++) {  /* negative */
                if (!valid_triplet(labels, i, j, k)) continue;
                r.num_valid++;
                double hinge = distances[(size_t)i * b + j] - distances[(size_t)i * b + k] + margin;
                if (hinge > 0) {
                    r.num_positive++;
                    cost += hinge;
                    coeff[(size_t)i * b + j] += 1.0;
                    coeff[(size_t)i * b + k] -= 1.0;
                }
            }
        }
    }
    r.fraction_positive = (double)r.num_positive / ((double)r.num_valid + DIVIDE_SAFE);
    r.loss = cost / ((double)r.num_positive + DIVIDE_SAFE);
    return r;
}

/* Chain rule from d loss / d distance(i, j) = coeff / denominator to the embeddings. */
static void gradient(int b, int dim, const double *e, const double *distances,
                     const double *coeff, double denominator, bool squared, double *grad) {
    for (int i = 0; i < b; i++) {
        for (int j = 0; j < b; j++) {
            double c = coeff[(size_t)i * b + j] / denominator;
            double d = distances[(size_t)i * b + j];
            if (c == 0.0 || i == j || (!squared && d == 0.0)) continue;
            for (int k = 0; k < dim; k++) {
                double diff = e[(size_t)i * dim + k] - e[(size_t)j * dim + k];
                double g = squared ? 2.0 * diff : diff / d;
                grad[(size_t)i * dim + k] += c * g;
                grad[(size_t)j * dim + k] -= c * g;
            }
        }
    }
}

int main(int argc, char **argv) {
    FILE *in = stdin;
    if (argc > 1 && !(in = fopen(argv[1], "r"))) die("cannot open the input file");
    char name[64];
    int b, dim, squared_flag;
    double margin;
    if (fscanf(in, "%63s %d %d %lf %d", name, &b, &dim, &margin, &squared_flag) != 5)
        die("expected a header: batch_all B D margin squared");
    if (strcmp(name, "batch_all") != 0) die("only the batch_all loss is implemented");
    if (b < 1 || dim < 1) die("B and D must be >= 1");
    bool squared = squared_flag != 0;

    int64_t *labels = alloc((size_t)b, sizeof *labels);
    double *e = alloc((size_t)b * dim, sizeof *e);
    double *distances = alloc((size_t)b * b, sizeof *distances);
    double *coeff = alloc((size_t)b * b, sizeof *coeff);
    double *grad = alloc((size_t)b * dim, sizeof *grad);
    for (int i = 0; i < b; i++)
        if (fscanf(in, "%" SCNd64, &labels[i]) != 1) die("expected B integer labels");
    for (size_t i = 0; i < (size_t)b * dim; i++)
        if (fscanf(in, "%lf", &e[i]) != 1) die("expected B*D embedding values");

    pairwise_distance(b, dim, e, distances, squared);
    struct result r = triplet_loss(b, labels, distances, margin, coeff);
    gradient(b, dim, e, distances, coeff, (double)r.num_positive + DIVIDE_SAFE, squared, grad);

    printf("loss %.17g\n", r.loss);
    printf("fraction_positive %.17g\n", r.fraction_positive);
    printf("num_positive %lld\nnum_valid %lld\n", r.num_positive, r.num_valid);
    printf("printed The triplet loss is %f with positives %f \n", r.loss, r.fraction_positive);
    printf("gradient\n");
    for (int i = 0; i < b; i++) {
        for (int k = 0; k < dim; k++) printf(k ? " %.17g" : "%.17g", grad[(size_t)i * dim + k]);
        printf("\n");
    }
    free(labels), free(e), free(distances), free(coeff), free(grad);
    return 0;
}
