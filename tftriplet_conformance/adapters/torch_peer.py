"""What the adapters of PyTorch peer libraries share: tensors in, loss and autograd out.

A peer adapter (pytorch-metric-learning, sentence-transformers) runs in this process: it
imports torch, not Keras, so no backend is fixed. Each fixture runs once per
*configuration* of the peer (the adapter's modes): the loss objects built as the peer's
users build them, called on float64 tensors, with the gradient taken by `torch.autograd`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util

from tftriplet_conformance.adapters import Adapter
from tftriplet_conformance.guard import describe


class TorchPeerAdapter(Adapter):
    """Base of the in-process PyTorch peers.

    Subclasses set `name`, `package` (the distribution), `module` (what to import)
    and `differences`, and implement `configurations`.
    """

    dtypes = ("float64",)
    differentiable = True
    package = ""
    module = ""
    #: A peer reports the loss (and maybe some counts); the counts it cannot report are
    #: not compared (the matrix lists them as not compared).
    not_reported = (
        "fraction_positive",
        "num_positive",
        "num_valid",
        "num_anchors",
        "num_pairs",
    )
    differences = ()

    def available(self):
        for needed in ("torch", self.module):
            if importlib.util.find_spec(needed) is None:
                return False, f"{needed} is not installed (pip install {self._dist(needed)})"
        try:
            importlib.import_module(self.module)
        except Exception as err:  # the real import error, as the peer's users would see it
            return False, f"import {self.module} failed: {type(err).__name__}: {err}"
        return True, ""

    def _dist(self, module):
        return "torch==2.13.0" if module == "torch" else self.package

    def versions(self):
        """`{distribution: version}` of what this adapter runs."""
        return {d: importlib.metadata.version(d) for d in ("torch", self.package)}

    def supports(self, fixture):
        ok, reason = super().supports(fixture)
        if not ok:
            return ok, reason
        if not self.configurations(fixture["loss"]):
            return False, self.unsupported_reason(fixture["loss"])
        return True, ""

    def unsupported_reason(self, loss):
        return f"{self.package} has no configuration for {loss}"

    def configurations(self, loss):
        """`{mode: fn}` with `fn(labels, embeddings) -> (loss tensor, {count: value})`."""
        raise NotImplementedError

    def run(self, fixture, dtype):
        import torch

        torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
        inputs = fixture["inputs"]
        runs = {}
        for mode, fn in self.configurations(fixture["loss"]).items():
            labels = torch.tensor(inputs["labels"], dtype=torch.int64)
            embeddings = torch.tensor(inputs["embeddings"], dtype=torch_dtype).requires_grad_()
            try:
                value, counts = fn(labels, embeddings)
                (gradient,) = torch.autograd.grad(value, embeddings, allow_unused=True)
            except Exception as err:
                runs[mode] = {"error": describe(err)}
                continue
            if gradient is None:  # the loss does not depend on the embeddings (no triple)
                gradient = torch.zeros_like(embeddings)
            outputs = {"loss": float(value.detach()), "gradient": gradient.tolist()}
            outputs.update(counts)
            runs[mode] = outputs
        return runs

