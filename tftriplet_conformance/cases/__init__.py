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
wrong). Every case is registered in `CASES` under its fixture's name.
"""

from tftriplet_conformance.cases import edges, mining, pins, tables  # noqa: F401  (register)
from tftriplet_conformance.cases.registry import CASES, Case, case

__all__ = ["CASES", "Case", "case"]
