"""glibc rand() reimplementation against the machine's C library, where there is one."""

import ctypes
import ctypes.util
import platform

import pytest

from tftriplet_conformance.glibc_rand import RAND_MAX, GlibcRand, seed_program_inputs


def _libc_rand():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("needs glibc to compare against")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return libc


@pytest.mark.parametrize("seed", [1, 0, 42, 2**31 - 1, 12345678])
def test_matches_glibc_rand(seed):
    libc = _libc_rand()
    libc.srand(ctypes.c_uint(seed))
    expected = [libc.rand() for _ in range(5000)]
    gen = GlibcRand(seed)
    assert [gen.rand() for _ in range(5000)] == expected


def test_seed_program_inputs_shape_and_range():
    labels, embeddings = seed_program_inputs()
    assert len(labels) == 10 and all(0 <= x < 3 for x in labels)
    assert len(embeddings) == 10 and all(len(row) == 128 for row in embeddings)
    assert all(0.0 <= v <= 1.0 for row in embeddings for v in row)
    assert RAND_MAX == 2**31 - 1
