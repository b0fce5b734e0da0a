"""Golden-fixture conformance suite for triplet losses, across frameworks.

``conformance/fixtures/*.json`` hold the cases (inputs, float64 expected outputs and
gradient, tolerances), ``schema.json`` their format, ``cases.py`` the seeded generator that
is their source of truth, and ``adapters/`` one adapter per backend. ``python -m
conformance`` runs every available backend over every fixture; ``python -m conformance
generate`` (re)writes the fixtures. See ``conformance/README.md`` for the contract.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
FIXTURES_DIR = PACKAGE_DIR / "fixtures"
SCHEMA_PATH = PACKAGE_DIR / "schema.json"
