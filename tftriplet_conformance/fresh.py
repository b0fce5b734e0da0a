"""Fresh cases: random cases drawn when the runner runs, which no file holds.

The golden fixtures ship with the package, so an implementation could look each answer up
instead of computing it. Each run of the runner therefore also draws fresh cases, from the
generator's own machinery (`tftriplet_conformance.cases`): glibc `rand()` inputs on the
grid of exact floats, every loss variant of the fixtures it runs (strategy, distance, soft
margin), random sizes, scales, margins and kernel hints, each case kept clear of ties
(`generate.build_fixture` refuses one that is not; another is drawn) and with a valid
triple whose term is positive, so that an answer of zeros fails too. Expected values come
from the float64 reference, half-precision tolerances as the generator computes them.

A run's seed is drawn at random and printed; `draw(fixtures, seed)` gives the same cases
again (`--fresh-seed`). A fresh case is a fixture like the others, named
`fresh:<variant>` (`:<n>` from the second case of a variant on): a colon no fixture's
name can hold (`schema.json`). The optional memory fixtures get fresh sequences too, one
per strategy, of a variant of the memory fixtures being run.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, replace

import numpy as np

from tftriplet_conformance import optional
from tftriplet_conformance.cases.memory import MemoryCase, memory_case
from tftriplet_conformance.cases.random_case import RandomCase, random_case, target_margin
from tftriplet_conformance.glibc_rand import GlibcRand
from tftriplet_conformance.reference import DISTANCE_NAMES
from tftriplet_conformance.variants import VARIANTS, options_of

#: What every fresh case's name starts with; no fixture's name can (`schema.json`).
PREFIX = "fresh:"
_WORDS = {"euclidean": "euclidean", "squared_euclidean": "squared", "cosine": "cosine"}
#: Draws per fresh case before giving up (a draw is refused when it is near a tie).
ATTEMPTS = 200


@dataclass(frozen=True)
class Fresh:
    """The fresh cases of one run.

    Attributes:
        seed: the run's seed (`None` when there are none).
        fixtures: the fresh cases, fixtures named `fresh:...`.
        opted_out: why the run has none, when the user turned them off; `None` otherwise.
    """

    seed: int | None
    fixtures: tuple = ()
    opted_out: str | None = None

    @classmethod
    def none(cls, reason):
        """No fresh cases, for `reason` (shown in the report)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("turning the fresh cases off needs a reason (a non-empty str)")
        return cls(seed=None, opted_out=reason.strip())


def new_seed():
    """A seed for one run, at random."""
    return secrets.randbelow(2**31)


def is_fresh(name):
    """Whether `name` is a fresh case's."""
    return name.startswith(PREFIX)


def variant_key(fixture):
    """`(feature, strategy, distance, soft)`: what decides whether an implementation
    supports a fixture (its loss, not its inputs); `feature` is `None` for a core one."""
    options = options_of(fixture["loss"])
    return optional.feature_of(fixture), options["name"], options["distance"], options["soft"]


def describe_key(key):
    """`batch_hard_soft_cosine`, `memory_semi_hard_squared`: a variant in a name."""
    feature, name, distance, soft = key
    words = [feature, name, "soft" if soft else None, _WORDS[distance]]
    return "_".join(w for w in words if w)


def draw(fixtures, seed=None, per_variant=1):
    """The fresh cases for a run over `fixtures`: `per_variant` of every core loss variant
    among them, and `per_variant` memory sequences per strategy among their memory
    fixtures (of one of those fixtures' variants). `seed`: a new one when `None`."""
    if isinstance(per_variant, bool) or not isinstance(per_variant, int) or per_variant < 1:
        raise ValueError(f"per_variant must be an int >= 1; got {per_variant!r}")
    seed = new_seed() if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"a fresh seed is an int in [0, 2**32); got {seed!r}")
    keys = {variant_key(f) for f in fixtures}
    cases = []
    for key in sorted((k for k in keys if k[0] is None), key=_order):
        cases += [_core(seed, key, number) for number in range(1, per_variant + 1)]
    for strategy in [n for n in VARIANTS if any(k[0] == "memory" and k[1] == n for k in keys)]:
        choices = sorted((k for k in keys if k[0] == "memory" and k[1] == strategy), key=_order)
        cases += [_memory(seed, choices, number) for number in range(1, per_variant + 1)]
    return Fresh(seed, tuple(cases))


def _order(key):
    feature, name, distance, soft = key
    return (feature or "", list(VARIANTS).index(name), soft, DISTANCE_NAMES.index(distance))


def _seed_of(*parts):
    """A 32-bit seed from the run's seed and where a draw is: the same on every machine."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _between(gen, low, high):
    return low + gen.rand() % (high - low + 1)


def _name(words, number):
    return PREFIX + words + (f":{number}" if number > 1 else "")


def _core(seed, key, number):
    """One fresh core case of the variant `key`, the first draw that is tie-clear and
    non-trivial."""
    from tftriplet_conformance.generate import build_fixture

    name = _name(describe_key(key), number)
    for attempt in range(ATTEMPTS):
        record = _core_record(GlibcRand(_seed_of(seed, name, attempt)), key)
        spec = random_case(record)
        spec["description"] = _description(seed, record, spec["loss"]["margin"])
        fixture = _built(build_fixture, name, spec, f"{__name__}.draw(seed={seed})")
        if fixture is not None:
            return fixture
    raise RuntimeError(f"no tie-clear draw for {name} in {ATTEMPTS} attempts (seed {seed})")


def _core_record(gen, key):
    """The shape of a random case (sizes, classes, scale, margin, hints), drawn by `gen`."""
    _, name, distance, soft = key
    mining = name != "batch_all"
    batch = _between(gen, 4, 12 if mining else 24)
    dim = _between(gen, 1 if distance != "cosine" and not mining else 2, 6 if mining else 12)
    per_class = None
    if gen.rand() % 4 == 0:  # a P x K batch
        per_class = _between(gen, 2, 4)
        classes = max(2, batch // per_class)
        batch = classes * per_class
    else:
        classes = _between(gen, 2, max(2, batch // 2))
    scale = 2.0 ** _between(gen, -6, 8) if gen.rand() % 3 == 0 else 1.0
    method = block = None
    if name == "batch_all" and gen.rand() % 2:  # hints only tftriplet's own kernels read
        method = "dense" if soft or gen.rand() % 2 else "sorted"
        block = _between(gen, 1, batch) if gen.rand() % 2 else None
    record = RandomCase(gen.rand(), batch, dim, classes, name, distance, soft, scale,
                        per_class=per_class, method=method, anchor_block=block)
    factor = 2.0 ** _between(gen, -3, 3) if gen.rand() % 2 else 1.0
    return replace(record, target_margin=target_margin(record) * factor)


def _description(seed, record, margin):
    classes = (f"{record.num_classes} classes" if record.per_class is None
               else f"{record.num_classes} x {record.per_class}")
    return (f"Fresh case of run seed {seed}: B={record.batch_size}, D={record.dim}, "
            f"{classes}, scale {record.scale:g}, margin {margin:g}")[:100]


def _built(build, name, spec, generator):
    """`build(name, spec, generator)`, or `None` when the draw is near a tie or trivial
    (no valid triple with a positive term: zeros would pass it). Not checked against the
    schema, whose names are file names (a test checks the cases' format)."""
    try:
        fixture = build(name, spec, generator, check_schema=False)
    except ValueError:  # not tie-clear, or (memory) the memory changes nothing
        return None
    steps = fixture["expected"].get("steps", [fixture["expected"]])
    if not any(s["loss"] > 0 and s["num_positive"] > 0 and np.any(s["gradient"])
               for s in steps):
        return None
    return fixture


def _memory(seed, choices, number):
    """One fresh memory sequence, of one of the variants in `choices`."""
    from tftriplet_conformance.generate_memory import build_memory_fixture

    name = _name(f"memory_{choices[0][1]}", number)
    for attempt in range(ATTEMPTS):
        gen = GlibcRand(_seed_of(seed, name, attempt))
        record = _memory_record(gen, choices[gen.rand() % len(choices)])
        fixture = _built(build_memory_fixture, name, memory_case(record),
                         f"{__name__}.draw(seed={seed})")
        if fixture is not None:
            return fixture
    raise RuntimeError(f"no tie-clear draw for {name} in {ATTEMPTS} attempts (seed {seed})")


def _memory_record(gen, key):
    """A random stream through a memory of the variant `key`, evicting entries."""
    _, name, distance, soft = key
    warmup = gen.rand() % 2
    sizes = tuple(_between(gen, 4, 7) for _ in range(_between(gen, 3, 5)))
    dim = _between(gen, 2, 4)
    typical = {"euclidean": math.sqrt(2 * dim / 3), "squared_euclidean": 2 * dim / 3,
               "cosine": 1.0}[distance] / 5
    return MemoryCase(
        gen.rand(), sizes, dim, _between(gen, 2, 4), _between(gen, 2, sum(sizes[warmup:]) - 1),
        warmup, name, distance, soft, typical * 2.0 ** _between(gen, -1, 1),
    )
