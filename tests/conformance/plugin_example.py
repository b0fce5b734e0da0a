"""A user's own batch-all triplet loss, certified by the conformance runner.

    PYTHONPATH=tests/conformance python -m tftriplet_conformance --adapter plugin_example:MyLoss
"""

import numpy as np

from tftriplet_conformance.adapters import Adapter


def my_batch_all_loss(labels, x, margin, squared):
    """Batch-all hinge triplet loss, its counts and its gradient (d loss / d x), vectorized."""
    diff = x[:, None, :] - x[None, :, :]
    sq = np.sum(diff**2, axis=-1)
    d = sq if squared else np.sqrt(sq)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    valid = positive[:, :, None] & ~same[:, None, :]  # [anchor, positive, negative]
    hinge = d[:, :, None] - d[:, None, :] + margin
    active = valid & (hinge > 0)
    num_positive, num_valid = int(active.sum()), int(valid.sum())
    loss = hinge[active].sum() / (num_positive + 1e-12)
    # d loss / d d[i, j]: +1 per active triple where j is the positive, -1 where the negative
    coeff = (active.sum(axis=2) - active.sum(axis=1)) / (num_positive + 1e-12)
    if squared:
        slope = 2.0 * diff
    else:  # the subgradient 0 where two rows coincide
        slope = np.divide(diff, d[:, :, None], out=np.zeros_like(diff), where=d[:, :, None] > 0)
    weighted = coeff[:, :, None] * slope
    gradient = weighted.sum(axis=1) - weighted.sum(axis=0)
    return {
        "loss": float(loss),
        "fraction_positive": num_positive / (num_valid + 1e-12),
        "num_positive": num_positive,
        "num_valid": num_valid,
        "gradient": gradient.tolist(),
    }


class MyLoss(Adapter):
    name = "my-loss"
    dtypes = ("float64",)
    differentiable = True

    def supports(self, fixture):
        loss = fixture["loss"]
        if loss["name"] != "batch_all" or loss.get("soft") or loss["distance"] == "cosine":
            return False, "my-loss implements the batch-all hinge with Euclidean distances"
        return True, ""

    def run(self, fixture, dtype):
        labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
        x = np.array(fixture["inputs"]["embeddings"], dtype=dtype)
        loss = fixture["loss"]
        squared = loss["distance"] == "squared_euclidean"
        return {"vectorized": my_batch_all_loss(labels, x, loss["margin"], squared)}


class MyWrongLoss(MyLoss):
    """The same, averaged over every valid triple instead of the positive ones: a bug."""

    name = "my-wrong-loss"

    def run(self, fixture, dtype):
        outputs = super().run(fixture, dtype)["vectorized"]
        scale = (outputs["num_positive"] + 1e-12) / (outputs["num_valid"] + 1e-12)
        outputs["loss"] *= scale
        outputs["gradient"] = (np.array(outputs["gradient"]) * scale).tolist()
        return {"vectorized": outputs}
