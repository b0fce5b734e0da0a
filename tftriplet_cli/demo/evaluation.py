"""The demo's evaluation: leave-one-out retrieval on the held-out data, and its table."""

from __future__ import annotations

from tftriplet.retrieval import retrieval_metrics

RECALL_KS = (1, 5)


def retrieval(embeddings, labels):
    """Recall@1, recall@5 and MAP@R of `embeddings`, each query against the others."""
    return retrieval_metrics(embeddings, labels, ks=RECALL_KS)


def format_table(rows):
    """A plain-text table of `(name, metrics dict)` rows."""
    header = ["", *[f"recall@{k}" for k in RECALL_KS], "map@r"]
    width = max(len(name) for name, _ in rows)
    lines = [f"{header[0]:<{width}}  " + "  ".join(f"{h:>8}" for h in header[1:])]
    for name, values in rows:
        cells = [values[f"recall@{k}"] for k in RECALL_KS] + [values["map@r"]]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>8.3f}" for c in cells))
    return "\n".join(lines)
