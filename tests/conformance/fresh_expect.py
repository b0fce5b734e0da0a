"""What a default run's fresh cases should be, counted from the fixtures themselves (not
with `tftriplet_conformance.fresh`), for the tests that read the runner's summary lines."""

from __future__ import annotations

import os
import re
from functools import cache

#: The fresh cases' seed in a test session (test_backends.py): fixed, so that a CI run is
#: reproducible, as the hypothesis profile `ci` is (tests/conftest.py).
#: `CONFORMANCE_FRESH_SEED=<n>` draws the cases of seed n, `=random` a new seed's.
SESSION_SEED = 18


@cache
def session_seed():
    """The seed of this session's fresh cases (`SESSION_SEED`, or the environment's)."""
    from tftriplet_conformance.fresh import new_seed

    text = os.environ.get("CONFORMANCE_FRESH_SEED", "").strip()
    if text == "random":
        return new_seed()
    return int(text) if text else SESSION_SEED


def loss_variant(fixture):
    """`(strategy, distance, soft)` of a fixture's loss."""
    loss = fixture["loss"]
    return loss["name"], loss.get("distance", "euclidean"), bool(loss.get("soft", False))


def default_fresh(fixtures):
    """`(core, memory)`: a default run draws one fresh case per loss variant of the core
    fixtures and one memory sequence per strategy of the memory fixtures."""
    core = {loss_variant(f) for f in fixtures if "feature" not in f}
    memory = {f["loss"]["name"] for f in fixtures if f.get("feature") == "memory"}
    return len(core), len(memory)


def fresh_line(stdout):
    """`(cases, backends, counts, seed)` from the fresh cases' summary line."""
    match = re.search(r"^(\d+) fresh cases x (\d+) backends: (.*) \(seed (\d+): --fresh-seed "
                      r"(\d+) draws them again\)$", stdout, flags=re.M)
    assert match and match.group(4) == match.group(5), stdout[-800:]
    return int(match.group(1)), int(match.group(2)), match.group(3), int(match.group(4))
