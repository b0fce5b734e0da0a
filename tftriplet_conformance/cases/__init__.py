"""The cases the fixtures are made from: one small function per edge case, tables of random ones.

Inputs come from glibc's `rand()` reimplemented in pure Python
(`tftriplet_conformance.glibc_rand`), so they are the same on every machine and NumPy
version. Random embeddings lie on a grid of multiples of 2**-10 in [-1, 1): exact in
float32 and float16, so a float32 backend sees exactly the fixture's inputs and its error is
its own. Random cases choose their margin in the widest gap between hinge roots, so that no
valid triple sits near a tie (`d(i,j) - d(i,k) + margin` near 0) and the counts are exact.

Modules: `inputs` (drawing inputs and margins), `random_case` (the record and builder of a
random case), `tables` (the random cases), `edges` (the seed program's case and batch-all's
edge cases), `mining` (edge cases of the other variants and of batch-all's evaluation
hints), `pins` (cases that pin a rule of the contract a plausible implementation gets
wrong), `memory` (sequences of batches through a cross-batch memory, an optional
feature). Every case is registered in `CASES` under its fixture's name, those of an
optional feature in `OPTIONAL_CASES[feature]`.
"""

from tftriplet_conformance.cases import edges, memory, mining, pins, tables  # noqa: F401
from tftriplet_conformance.cases.registry import CASES, OPTIONAL_CASES, Case, case

memory.register_memory_cases(memory.FEATURE)

__all__ = ["CASES", "OPTIONAL_CASES", "Case", "case"]
