#!/usr/bin/env node
// The triplet losses of the conformance contract in JavaScript (Node.js, no packages),
// written from conformance/README.md and schema.json, certified through the runner's
// process protocol (docs/conformance.md, "The process protocol"):
//
//     python -m tftriplet_conformance --command "node conformance/examples/node/triplet.js"
//
// Batch-all (hinge and soft), batch-hard (hinge and soft) and semi-hard; Euclidean, squared
// Euclidean and cosine distances; the loss, its counts and d loss / d embeddings in float64.
// Requests come one JSON object per line on stdin, replies go one per line to stdout.
'use strict';

const readline = require('node:readline');

const PROTOCOL = 1;
const DIVIDE_SAFE = 1e-12; // added to every denominator: 0 / 0 gives 0

// The decisions of the contract, kept in one place (triplet_wrong.js changes one of them).
const rules = {
  // a hinge argument d(i,j) - d(i,k) + margin counts as positive (active)
  active: (x) => x > 0,
};

// ---- distances and their gradients ---------------------------------------------------------

const dot = (a, b) => a.reduce((sum, x, k) => sum + x * b[k], 0);
const norm = (a) => Math.sqrt(dot(a, a));

function distance(kind, a, b) {
  if (kind === 'cosine') {
    const na = norm(a), nb = norm(b);
    return na === 0 || nb === 0 ? 1 : 1 - dot(a, b) / (na * nb);
  }
  const sq = a.reduce((sum, x, k) => sum + (x - b[k]) ** 2, 0);
  return kind === 'squared_euclidean' ? sq : Math.sqrt(sq);
}

function distances(kind, x) {
  return x.map((a, i) => x.map((b, j) => (i === j ? 0 : distance(kind, a, b))));
}

// [d d(i,j) / d x_i, d d(i,j) / d x_j]; 0 where undefined (equal rows, a zero row under cosine)
function pairGradient(kind, a, b, d) {
  const zero = a.map(() => 0);
  if (kind === 'squared_euclidean') {
    return [a.map((x, k) => 2 * (x - b[k])), a.map((x, k) => -2 * (x - b[k]))];
  }
  if (kind === 'euclidean') {
    if (d === 0) return [zero, zero];
    return [a.map((x, k) => (x - b[k]) / d), a.map((x, k) => (b[k] - x) / d)];
  }
  const na = norm(a), nb = norm(b);
  if (na === 0 || nb === 0) return [zero, zero];
  const cos = dot(a, b) / (na * nb);
  return [
    a.map((x, k) => -(b[k] / (na * nb) - (cos * x) / (na * na))),
    b.map((y, k) => -(a[k] / (na * nb) - (cos * y) / (nb * nb))),
  ];
}

// ---- the terms of a loss: hinge or softplus, with d loss / d d(i,j) ------------------------

function softplus(x) {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

function sigmoid(x) {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

class Terms {
  constructor(d, margin, soft) {
    this.d = d;
    this.margin = margin;
    this.soft = soft;
    this.total = 0;
    this.numPositive = 0;
    this.coeff = d.map((row) => row.map(() => 0));
  }

  // the term of (anchor i, positive j, negative k)
  add(i, j, k) {
    const x = this.d[i][j] - this.d[i][k];
    const active = rules.active(x + this.margin);
    if (active) this.numPositive += 1;
    const value = this.soft ? softplus(x) : active ? x + this.margin : 0;
    const slope = this.soft ? sigmoid(x) : active ? 1 : 0;
    this.total += value;
    this.coeff[i][j] += slope;
    this.coeff[i][k] -= slope;
  }

  // loss = total / (denominator + 1e-12) and its gradient through the distances
  result(x, kind, denominator, counts) {
    const scale = denominator + DIVIDE_SAFE;
    const gradient = x.map((row) => row.map(() => 0));
    for (let i = 0; i < x.length; i++) {
      for (let j = 0; j < x.length; j++) {
        const c = this.coeff[i][j] / scale;
        if (i === j || c === 0) continue;
        const [gi, gj] = pairGradient(kind, x[i], x[j], this.d[i][j]);
        gi.forEach((g, k) => { gradient[i][k] += c * g; });
        gj.forEach((g, k) => { gradient[j][k] += c * g; });
      }
    }
    return { loss: this.total / scale, num_positive: this.numPositive, ...counts, gradient };
  }
}

// ---- the three strategies --------------------------------------------------------------------

const positives = (labels, i) => labels.flatMap((l, j) => (j !== i && l === labels[i] ? [j] : []));
const negatives = (labels, i) => labels.flatMap((l, k) => (l !== labels[i] ? [k] : []));

// the first index of `candidates` whose distance from i is the largest (or smallest)
function hardest(d, i, candidates, farthest) {
  return candidates.reduce((best, c) =>
    (farthest ? d[i][c] > d[i][best] : d[i][c] < d[i][best]) ? c : best);
}

function batchAll(labels, x, loss, d, terms) {
  let numValid = 0;
  labels.forEach((_, i) => {
    for (const j of positives(labels, i)) {
      for (const k of negatives(labels, i)) {
        numValid += 1;
        terms.add(i, j, k);
      }
    }
  });
  const fraction = terms.numPositive / (numValid + DIVIDE_SAFE);
  const denominator = loss.soft ? numValid : terms.numPositive;
  return terms.result(x, loss.distance, denominator,
    { num_valid: numValid, fraction_positive: fraction });
}

function batchHard(labels, x, loss, d, terms) {
  let numAnchors = 0;
  labels.forEach((_, i) => {
    const pos = positives(labels, i), neg = negatives(labels, i);
    if (pos.length === 0 || neg.length === 0) return;
    numAnchors += 1;
    terms.add(i, hardest(d, i, pos, true), hardest(d, i, neg, false));
  });
  return terms.result(x, loss.distance, numAnchors, { num_anchors: numAnchors });
}

function semiHard(labels, x, loss, d, terms) {
  let numPairs = 0;
  labels.forEach((_, i) => {
    const neg = negatives(labels, i);
    if (neg.length === 0) return;
    for (const j of positives(labels, i)) {
      const farther = neg.filter((k) => d[i][k] > d[i][j]);
      const k = farther.length ? hardest(d, i, farther, false) : hardest(d, i, neg, true);
      numPairs += 1;
      terms.add(i, j, k);
    }
  });
  return terms.result(x, loss.distance, numPairs, { num_pairs: numPairs });
}

const STRATEGIES = { batch_all: batchAll, batch_hard: batchHard, semi_hard: semiHard };
const DISTANCES = ['euclidean', 'squared_euclidean', 'cosine'];

// Why this implementation cannot compute `loss`, or null.
function unsupported(loss) {
  if (!(loss.name in STRATEGIES)) return `no loss named ${JSON.stringify(loss.name)}`;
  if (!DISTANCES.includes(loss.distance)) return `no ${JSON.stringify(loss.distance)} distance`;
  if (loss.soft && loss.name === 'semi_hard') return 'semi_hard has no soft margin';
  return null;
}

function compute(request) {
  const loss = { distance: 'euclidean', soft: false, ...request.loss };
  const labels = request.inputs.labels.map(BigInt); // exact int64: never through a double
  const x = request.inputs.embeddings;
  const d = distances(loss.distance, x);
  const terms = new Terms(d, loss.margin, Boolean(loss.soft));
  return STRATEGIES[loss.name](labels, x, loss, d, terms);
}

// ---- the protocol ------------------------------------------------------------------------------

// JSON.parse reads every number as a double, which merges int64 labels above 2**53: the
// labels' digits are quoted first, so they arrive as strings and become BigInts.
function parseRequest(line) {
  return JSON.parse(line.replace(/("labels"\s*:\s*\[)([^\]]*)\]/, (_, head, body) =>
    `${head}${body.split(',').map((s) => JSON.stringify(s.trim())).join(',')}]`));
}

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function answer(request, name) {
  if (request.type === 'start') {
    return {
      type: 'started',
      protocol: PROTOCOL,
      implementation: { name, language: 'JavaScript (Node.js)', version: '1.0' },
      dtypes: ['float64'],
      differentiable: true,
    };
  }
  if (request.type !== 'run') {
    return { type: 'error', id: request.id ?? null, message: `unknown type ${request.type}` };
  }
  const reason = unsupported({ distance: 'euclidean', ...request.loss });
  if (reason) return { type: 'unsupported', id: request.id, reason };
  if (request.dtype !== 'float64') {
    return { type: 'error', id: request.id, message: 'computes in float64 only' };
  }
  return { type: 'result', id: request.id, outputs: compute(request) };
}

function serve(name = 'triplet.js') {
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  lines.on('line', (line) => {
    let request;
    try {
      request = parseRequest(line);
    } catch (err) {
      reply({ type: 'error', id: null, message: `not JSON: ${err.message}` });
      return;
    }
    if (request.type === 'stop') {
      lines.close();
      return;
    }
    try {
      reply(answer(request, name));
    } catch (err) {
      reply({ type: 'error', id: request.id ?? null, message: String(err.stack || err) });
    }
  });
}

module.exports = { rules, compute, serve };

if (require.main === module) serve();
