"""glibc's `rand()` (the default TYPE_3 additive feedback generator), in pure Python.

The seed program draws its labels and embeddings from `rand()` with the default seed 1.
Reproducing the generator here makes that case independent of the machine's C library.

The algorithm follows glibc's `random_r.c`: the state `r[0..30]` is filled from the seed
with the Park-Miller "minimal standard" LCG (16807 mod 2**31 - 1), the next 310 outputs are
discarded, and each output after that is `(r[i-31] + r[i-3]) mod 2**32` shifted right by one.
"""

from __future__ import annotations

RAND_MAX = 2147483647


class GlibcRand:
    """A generator that yields exactly what glibc `rand()` yields after `srand(seed)`.

    Args:
        seed: the `srand` seed; glibc treats 0 as 1 and 1 is the default.
    """

    def __init__(self, seed: int = 1):
        seed &= 0xFFFFFFFF
        if seed == 0:
            seed = 1
        r = [0] * 344
        r[0] = seed if seed < 2**31 else seed - 2**32
        for i in range(1, 31):
            # Schrage's method, as glibc writes it, so that the signed arithmetic matches.
            hi = int(r[i - 1] / 127773)  # C division truncates toward zero
            lo = r[i - 1] - hi * 127773
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            r[i] = word
        for i in range(31, 34):
            r[i] = r[i - 31]
        r = [x & 0xFFFFFFFF for x in r]
        for i in range(34, 344):
            r[i] = (r[i - 31] + r[i - 3]) & 0xFFFFFFFF
        self._state = r[-34:]  # enough history: r[i-31] and r[i-3]

    def rand(self) -> int:
        """Return the next value in `[0, RAND_MAX]`."""
        s = self._state
        value = (s[-31] + s[-3]) & 0xFFFFFFFF
        s.append(value)
        del s[0]
        return value >> 1


def seed_program_inputs(
    batch_size: int = 10, vector_size: int = 128, num_classes: int = 3, seed: int = 1
):
    """Draw labels and embeddings exactly as the seed program's `main()` does.

    For each row `i`: `labels[i] = rand() % num_classes`, then `vector_size` values
    `rand() / RAND_MAX` (as C doubles).

    Returns:
        `(labels, embeddings)` as a list of ints and a list of lists of floats.
    """
    gen = GlibcRand(seed)
    labels = []
    embeddings = []
    for _ in range(batch_size):
        labels.append(gen.rand() % num_classes)
        embeddings.append([gen.rand() / RAND_MAX for _ in range(vector_size)])
    return labels, embeddings
