"""PyTorch's float32 CPU products through oneDNN (`tftriplet.onednn`): where they are taken,
their values against float64 NumPy, and the fallbacks to PyTorch's own product."""

import numpy as np
import pytest
from helpers import run_in_backend

from tftriplet_conformance import reference

_PRODUCTS = """
import json, platform
import numpy as np, torch
import tftriplet
from tftriplet import backend_ops, onednn
rng = np.random.default_rng(0)
t = lambda shape: torch.tensor(rng.normal(size=shape).astype("float32"))
a, b = t((7, 5)), t((5, 9))
a_by_columns, b_by_columns = t((5, 7)).T, t((9, 5)).T
out = {"machine": platform.machine(), "available": onednn.available()}
products = {"rows": (a, b), "columns": (a_by_columns, b_by_columns),
            "neither": (a_by_columns, b)}
out["products"] = {}
for name, (x, y) in products.items():
    got = onednn.product(x, y)
    out["products"][name] = {"a": x.tolist(), "b": y.tolist(),
                             "got": None if got is None else got.tolist(),
                             "matmul_t": backend_ops.matmul_t(x, y).tolist()}
tracked = a.clone().requires_grad_()
product = backend_ops.matmul_t(tracked, b)
product.sum().backward()
out["tracked"] = {"oneDNN": onednn.product(tracked, b) is not None,
                  "equal": torch.equal(product.detach(), a @ b),
                  "gradient": tracked.grad.tolist()}
out["float64"] = {"oneDNN": onednn.product(a.double(), b.double()) is not None,
                  "equal": torch.equal(backend_ops.matmul_t(a.double(), b.double()),
                                       a.double() @ b.double())}
# acc - g1^T x1 - g2^T x2, accumulated by columns (oneDNN) and by rows (addmm_)
g1, x1, g2, x2 = t((6, 7)), t((6, 4)), t((6, 7)), t((6, 4))
by_columns = backend_ops.accumulator_zeros(torch.zeros(7, 4))
by_rows = torch.zeros(7, 4)
out["by_columns_stored"] = by_columns.T.is_contiguous() and not by_columns.is_contiguous()
for g, x in ((g1, x1), (g2, x2)):
    by_columns = backend_ops.subtract_product(by_columns, g, x)
    same = backend_ops.subtract_product(by_rows, g, x)
    out["by_rows_in_place"] = same is by_rows
out["accumulated"] = {"by_columns": by_columns.tolist(), "by_rows": by_rows.tolist(),
                      "factors": [v.tolist() for v in (g1, x1, g2, x2)]}
# the engine, in blocks, with oneDNN and without
y = torch.tensor(np.arange(96) % 7)
e = t((96, 16))
def loss_and_gradient():
    x = e.clone().requires_grad_()
    loss = tftriplet.batch_all_triplet_loss(y, x, margin=0.5, anchor_block=32)[0]
    loss.backward()
    return float(loss), x.grad.tolist()
out["engine"] = loss_and_gradient()
onednn.available = lambda: False
out["engine_without"] = loss_and_gradient()
out["without"] = {"product": onednn.product(a, b) is None,
                  "equal": torch.equal(backend_ops.matmul_t(a, b), a @ b),
                  "zeros_by_rows": backend_ops.accumulator_zeros(a).is_contiguous()}
out["labels"], out["embeddings"] = y.tolist(), e.tolist()
print(json.dumps(out))
"""


def test_onednn_products_where_they_apply_and_pytorchs_elsewhere():
    pytest.importorskip("torch")
    out = run_in_backend("torch", _PRODUCTS, {})
    # on the x86-64 CPUs it was measured on, the op exists and passes its check
    assert out["available"] == (out["machine"].lower() in ("x86_64", "amd64"))
    for name, case in out["products"].items():
        expected = np.array(case["a"]) @ np.array(case["b"])
        np.testing.assert_allclose(case["matmul_t"], expected, rtol=1e-5, atol=1e-5)
        if name == "neither" or not out["available"]:
            assert case["got"] is None, name  # neither factor is read by rows
        else:
            assert case["got"] == case["matmul_t"], name  # matmul_t took it
            np.testing.assert_allclose(case["got"], expected, rtol=1e-5, atol=1e-5)
    # autograd and float64 keep PyTorch's own product, and the gradient flows
    assert out["tracked"]["oneDNN"] is False and out["tracked"]["equal"]
    b = np.array(out["products"]["rows"]["b"])
    np.testing.assert_allclose(out["tracked"]["gradient"], np.tile(b.sum(1), (7, 1)),
                               rtol=1e-5, atol=1e-5)
    assert out["float64"] == {"oneDNN": False, "equal": True}
    # both accumulators: -g1^T x1 - g2^T x2
    g1, x1, g2, x2 = map(np.array, out["accumulated"]["factors"])
    expected = -g1.T @ x1 - g2.T @ x2
    assert out["by_columns_stored"] == out["available"]
    assert out["by_rows_in_place"]
    for key in ("by_columns", "by_rows"):
        np.testing.assert_allclose(out["accumulated"][key], expected, rtol=1e-5, atol=1e-5)
    # the engine with and without oneDNN, against the float64 reference
    ref = reference.batch_all(np.array(out["labels"]), np.array(out["embeddings"]), margin=0.5)
    for key in ("engine", "engine_without"):
        loss, gradient = out[key]
        np.testing.assert_allclose(loss, ref["loss"], rtol=1e-5)
        np.testing.assert_allclose(gradient, ref["gradient"], rtol=1e-4, atol=1e-6)
    assert out["without"] == {"product": True, "equal": True, "zeros_by_rows": True}
