/* The masked batch-all triplet loss of the seed program (conformance/c/seed_program.c),
 * rewritten for the conformance suite: batch and vector sizes at run time, 64-bit labels,
 * float64 throughout, and the analytic gradient.
 *
 * It speaks the conformance runner's process protocol, version 1 (docs/conformance.md,
 * "The process protocol"): one JSON message per line on stdin, one JSON reply per line on
 * stdout. "start" is answered with "started" (name, dtypes, differentiable); "run"
 * with the outputs: loss, fraction_positive, num_positive, num_valid, gradient (B rows of
 * D numbers, %.17g) and "printed", the seed program's line for these values; or with
 * "unsupported" for what it does not implement (batch_hard, semi_hard, the soft margin,
 * the cosine distance); "stop" or the end of stdin ends it. A minimal JSON reader below
 * parses the requests (no library is needed).
 *
 * Differences from the seed, on purpose: distances are sqrt(sum (a_k - b_k)^2) rather than
 * |a|^2 - 2ab + |b|^2 (no cancellation, so equal rows give exactly 0); where a distance is
 * 0 its (sub)gradient is taken as 0; counts are 64-bit. The loss is the seed's: the sum of
 * hinges over valid triples divided by (positive count + 1e-12).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIVIDE_SAFE 1e-12
#define PROTOCOL 1

static void die(const char *message) {
    fprintf(stderr, "triplet: %s\n", message);
    exit(2);
}

static void *alloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size);
    if (!p) die("out of memory");
    return p;
}

/* ---- a minimal JSON reader: one message (a line) into a tree ------------------------ */

enum jtype { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT };

struct json {
    enum jtype type;
    bool truth;              /* J_BOOL */
    char *text;              /* J_NUMBER: its characters; J_STRING: the decoded string */
    char *key;               /* the member's name, inside an object */
    struct json *child;      /* the first element or member */
    struct json *next;       /* the next sibling */
};

struct parser {
    const char *p;
    const char *error;
};

static void json_free(struct json *v) {
    while (v) {
        struct json *next = v->next;
        json_free(v->child);
        free(v->text), free(v->key), free(v);
        v = next;
    }
}

static void skip_space(struct parser *ps) {
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n') ps->p++;
}

static struct json *parse_value(struct parser *ps);

/* Appends the UTF-8 encoding of code point c to out. */
static char *put_utf8(char *out, unsigned long c) {
    if (c < 0x80) {
        *out++ = (char)c;
    } else if (c < 0x800) {
        *out++ = (char)(0xC0 | (c >> 6)), *out++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *out++ = (char)(0xE0 | (c >> 12)), *out++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (char)(0x80 | (c & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (c >> 18)), *out++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((c >> 6) & 0x3F)), *out++ = (char)(0x80 | (c & 0x3F));
    }
    return out;
}

static bool read_hex4(struct parser *ps, unsigned long *c) {
    char digits[5] = {0};
    for (int i = 0; i < 4; i++) {
        if (!ps->p[i] || !strchr("0123456789abcdefABCDEF", ps->p[i])) return false;
        digits[i] = ps->p[i];
    }
    *c = strtoul(digits, NULL, 16);
    ps->p += 4;
    return true;
}

/* A string after its opening quote; the decoded text is never longer than the source. */
static char *parse_string(struct parser *ps) {
    const char *end = ps->p;
    while (*end && *end != '"') end += (*end == '\\' && end[1]) ? 2 : 1;
    char *out = alloc((size_t)(end - ps->p) + 1, 1), *o = out;
    while (*ps->p && *ps->p != '"') {
        char ch = *ps->p++;
        if (ch != '\\') { *o++ = ch; continue; }
        ch = *ps->p++;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *at = ch ? strchr(from, ch) : NULL;
        unsigned long c, low;
        if (at) {
            *o++ = to[at - from];
        } else if (ch == 'u' && read_hex4(ps, &c)) {
            if (c >= 0xD800 && c < 0xDC00 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                ps->p += 2;
                if (!read_hex4(ps, &low)) break;
                c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
            }
            o = put_utf8(o, c);
        } else {
            ps->error = "a bad escape in a string";
            break;
        }
    }
    if (*ps->p != '"' && !ps->error) ps->error = "an unterminated string";
    if (*ps->p == '"') ps->p++;
    *o = '\0';
    return out;
}

/* The elements of an array or the members of an object, after its opening bracket. */
static void parse_items(struct parser *ps, struct json *v, char close, bool members) {
    struct json **tail = &v->child;
    skip_space(ps);
    if (*ps->p == close) { ps->p++; return; }
    while (!ps->error) {
        char *key = NULL;
        skip_space(ps);
        if (members) {
            if (*ps->p != '"') { ps->error = "expected a member name"; return; }
            ps->p++;
            key = parse_string(ps);
            skip_space(ps);
            if (*ps->p++ != ':') { free(key); ps->error = "expected ':'"; return; }
        }
        struct json *item = parse_value(ps);
        if (!item) { free(key); return; }
        item->key = key;
        *tail = item, tail = &item->next;
        skip_space(ps);
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == close) { ps->p++; return; }
        ps->error = members ? "expected ',' or '}'" : "expected ',' or ']'";
    }
}

static struct json *parse_value(struct parser *ps) {
    skip_space(ps);
    struct json *v = alloc(1, sizeof *v);
    const char *start = ps->p;
    if (*ps->p == '{' || *ps->p == '[') {
        v->type = *ps->p == '{' ? J_OBJECT : J_ARRAY;
        ps->p++;
        parse_items(ps, v, v->type == J_OBJECT ? '}' : ']', v->type == J_OBJECT);
    } else if (*ps->p == '"') {
        ps->p++;
        v->type = J_STRING, v->text = parse_string(ps);
    } else if (strncmp(ps->p, "true", 4) == 0 || strncmp(ps->p, "false", 5) == 0) {
        v->type = J_BOOL, v->truth = *ps->p == 't';
        ps->p += v->truth ? 4 : 5;
    } else if (strncmp(ps->p, "null", 4) == 0) {
        v->type = J_NULL, ps->p += 4;
    } else {
        while (*ps->p && strchr("+-0123456789.eE", *ps->p)) ps->p++;
        if (ps->p == start) ps->error = "expected a JSON value";
        v->type = J_NUMBER, v->text = alloc((size_t)(ps->p - start) + 1, 1);
        memcpy(v->text, start, (size_t)(ps->p - start));
    }
    if (ps->error) { json_free(v); return NULL; }
    return v;
}

static struct json *member(const struct json *object, const char *key) {
    if (!object || object->type != J_OBJECT) return NULL;
    for (struct json *m = object->child; m; m = m->next)
        if (strcmp(m->key, key) == 0) return m;
    return NULL;
}

static const char *string_member(const struct json *object, const char *key, const char *dflt) {
    const struct json *m = member(object, key);
    return m && m->type == J_STRING ? m->text : dflt;
}

static size_t length(const struct json *array) {
    size_t n = 0;
    for (const struct json *e = array ? array->child : NULL; e; e = e->next) n++;
    return n;
}

/* ---- the loss, as in the seed program --------------------------------------------------- */

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

/* ---- the protocol ----------------------------------------------------------------------- */

/* A JSON string: the text between quotes, with '"', '\' and control characters escaped. */
static void put_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned)*s);
        else putchar(*s);
    }
    putchar('"');
}

/* A number that reads back as the same double; NaN and infinities as Python's json writes them. */
static void put_number(double x) {
    if (isnan(x)) printf("NaN");
    else if (isinf(x)) printf(x > 0 ? "Infinity" : "-Infinity");
    else printf("%.17g", x);
}

/* The start of a reply: {"type": ..., "id": <the request's id, as it was written>. */
static void put_head(const char *type, const struct json *id) {
    printf("{\"type\":\"%s\",\"id\":%s", type, id && id->type == J_NUMBER ? id->text : "null");
}

static void reply_text(const char *type, const struct json *id, const char *field,
                       const char *text) {
    put_head(type, id);
    printf(",\"%s\":", field);
    put_string(text);
    printf("}\n");
}

/* Why the loss of a request is not implemented here, or NULL. */
static const char *unsupported(const struct json *loss, char *buffer, size_t size) {
    const char *name = string_member(loss, "name", "");
    const char *distance = string_member(loss, "distance", "euclidean");
    const struct json *soft = member(loss, "soft");
    if (strcmp(name, "batch_all") != 0)
        snprintf(buffer, size, "triplet.c implements only batch_all, not %s", name);
    else if (soft && soft->type == J_BOOL && soft->truth)
        snprintf(buffer, size, "triplet.c implements only the hinge, not the soft margin (soft=true)");
    else if (strcmp(distance, "euclidean") != 0 && strcmp(distance, "squared_euclidean") != 0)
        snprintf(buffer, size, "triplet.c has no %s distance", distance);
    else
        return NULL;
    return buffer;
}

struct batch {
    int b, dim;
    int64_t *labels;
    double *e;
};

/* Reads inputs.labels (exact int64) and inputs.embeddings (B rows of D); NULL or an error. */
static const char *read_batch(const struct json *inputs, struct batch *batch) {
    const struct json *labels = member(inputs, "labels"), *rows = member(inputs, "embeddings");
    if (!labels || labels->type != J_ARRAY || !rows || rows->type != J_ARRAY)
        return "inputs must hold the arrays labels and embeddings";
    batch->b = (int)length(labels);
    batch->dim = rows->child ? (int)length(rows->child) : 0;
    if (batch->b < 1 || batch->dim < 1 || (int)length(rows) != batch->b)
        return "expected B >= 1 labels and B rows of D >= 1 embedding values";
    batch->labels = alloc((size_t)batch->b, sizeof *batch->labels);
    batch->e = alloc((size_t)batch->b * batch->dim, sizeof *batch->e);
    int i = 0;
    for (const struct json *l = labels->child; l; l = l->next, i++) {
        char *end;
        errno = 0;
        if (l->type != J_NUMBER) return "labels must be integers";
        batch->labels[i] = strtoimax(l->text, &end, 10);
        if (errno || *end) return "labels must be integers in the int64 range";
    }
    size_t at = 0;
    for (const struct json *row = rows->child; row; row = row->next) {
        if (row->type != J_ARRAY || (int)length(row) != batch->dim)
            return "every embedding row must be an array of D numbers";
        for (const struct json *x = row->child; x; x = x->next) {
            char *end;
            if (x->type != J_NUMBER) return "embeddings must be numbers";
            batch->e[at++] = strtod(x->text, &end);
            if (*end) return "embeddings must be numbers";
        }
    }
    return NULL;
}

static void put_result(const struct json *id, const struct batch *batch, struct result r,
                       const double *grad) {
    put_head("result", id);
    printf(",\"outputs\":{\"loss\":");
    put_number(r.loss);
    printf(",\"fraction_positive\":");
    put_number(r.fraction_positive);
    printf(",\"num_positive\":%lld,\"num_valid\":%lld", r.num_positive, r.num_valid);
    printf(",\"printed\":\"The triplet loss is %f with positives %f \"", r.loss,
           r.fraction_positive);
    printf(",\"gradient\":[");
    for (int i = 0; i < batch->b; i++) {
        printf(i ? ",[" : "[");
        for (int k = 0; k < batch->dim; k++) {
            if (k) putchar(',');
            put_number(grad[(size_t)i * batch->dim + k]);
        }
        putchar(']');
    }
    printf("]}}\n");
}

static void run(const struct json *request) {
    const struct json *id = member(request, "id"), *loss = member(request, "loss");
    const struct json *margin = member(loss, "margin");
    char reason[200];
    if (!loss || !margin || margin->type != J_NUMBER) {
        reply_text("error", id, "message", "expected a loss object with a margin");
        return;
    }
    if (unsupported(loss, reason, sizeof reason)) {
        reply_text("unsupported", id, "reason", reason);
        return;
    }
    if (strcmp(string_member(request, "dtype", ""), "float64") != 0) {
        reply_text("error", id, "message", "triplet.c computes in float64 only");
        return;
    }
    struct batch batch = {0, 0, NULL, NULL};
    const char *error = read_batch(member(request, "inputs"), &batch);
    if (error) {
        reply_text("error", id, "message", error);
    } else {
        int b = batch.b, dim = batch.dim;
        bool squared = strcmp(string_member(loss, "distance", "euclidean"), "squared_euclidean") == 0;
        double *distances = alloc((size_t)b * b, sizeof *distances);
        double *coeff = alloc((size_t)b * b, sizeof *coeff);
        double *grad = alloc((size_t)b * dim, sizeof *grad);
        pairwise_distance(b, dim, batch.e, distances, squared);
        struct result r = triplet_loss(b, batch.labels, distances, strtod(margin->text, NULL), coeff);
        gradient(b, dim, batch.e, distances, coeff, (double)r.num_positive + DIVIDE_SAFE, squared,
                 grad);
        put_result(id, &batch, r, grad);
        free(distances), free(coeff), free(grad);
    }
    free(batch.labels), free(batch.e);
}

/* One line of any length from stdin, without its newline; NULL at the end. */
static char *read_line(void) {
    size_t size = 1 << 16, n = 0;
    char *line = alloc(size, 1);
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (n + 1 == size) {
            line = realloc(line, size *= 2);
            if (!line) die("out of memory");
        }
        line[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(line);
        return NULL;
    }
    line[n] = '\0';
    return line;
}

int main(void) {
    char *line;
    while ((line = read_line()) != NULL) {
        struct parser ps = {line, NULL};
        struct json *message = parse_value(&ps);
        const char *type = string_member(message, "type", "");
        if (!message) {
            reply_text("error", NULL, "message", ps.error);
        } else if (strcmp(type, "start") == 0) {
            printf("{\"type\":\"started\",\"protocol\":%d,\"implementation\":{\"name\":"
                   "\"triplet.c\",\"language\":\"C99\",\"homepage\":"
                   "\"conformance/c/triplet.c\"},\"dtypes\":[\"float64\"],"
                   "\"differentiable\":true}\n", PROTOCOL);
        } else if (strcmp(type, "run") == 0) {
            run(message);
        } else if (strcmp(type, "stop") != 0) {
            reply_text("error", member(message, "id"), "message", "unknown message type");
        }
        fflush(stdout);
        bool stop = strcmp(type, "stop") == 0;
        json_free(message), free(line);
        if (stop) break;
    }
    return 0;
}
