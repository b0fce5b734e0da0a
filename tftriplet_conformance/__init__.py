"""The triplet-loss conformance suite's runner, oracle and adapters.

The contract itself is language-neutral data (the repository's `conformance/` folder,
installed with this package): `fixtures/*.json` (inputs, float64 expected outputs and
gradient, tolerances), `schema.json` (their format), `c/` (the C implementation) and
`README.md` (what an implementation must do to pass). This package runs implementations
against it: `python -m tftriplet_conformance` runs every available backend over every
fixture. Its float64 reference (`tftriplet_conformance.reference`) is the oracle the
golden values come from, and `tftriplet_conformance.cases` the seeded generator of
the fixtures (`python -m tftriplet_conformance generate`). Other libraries' triplet
losses run as backends too (`tftriplet_conformance.adapters.peer_adapters`, their
report `python -m tftriplet_conformance report`), and so does anyone's own implementation
(`--adapter package.module:Name`; the interface is in the contract's README), in any
language as a process (`--command "node my_triplet.js"`; `adapters.process`). Optional
features of the contract (the cross-batch memory) keep their fixtures apart, for the
implementations that claim them (`tftriplet_conformance.optional`).
"""

from pathlib import Path


def _contract_dir():
    """The contract's folder: installed with the package, or the checkout's `conformance/`."""
    installed = Path(__file__).resolve().parent / "contract"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "conformance"


#: The folder of the contract: fixtures, schema, C sources, README.
CONTRACT_DIR = _contract_dir()
FIXTURES_DIR = CONTRACT_DIR / "fixtures"
SCHEMA_PATH = CONTRACT_DIR / "schema.json"
C_DIR = CONTRACT_DIR / "c"
