"""List the tests that no tox environment ran, and fail when there are any.

Every environment's pytest writes ``{collected, outcomes}`` to its report
(``TFTRIPLET_TEST_REPORT``, see tests/conftest.py). A test ran when some environment passed
or failed it; one that every environment skipped or deselected never ran::

    python tests/unrun.py .tox/test-reports
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def unrun(reports):
    """``(never run, with the reasons seen)`` from ``{env: report}``."""
    collected = set()
    ran = set()
    seen = {}
    for env, report in reports.items():
        collected.update(report["collected"])
        for nodeid, outcome in report["outcomes"].items():
            if outcome in ("passed", "failed"):
                ran.add(nodeid)
            else:
                seen.setdefault(nodeid, []).append(f"{env}: {outcome}")
    modules_that_ran = {nodeid.split("::")[0] for nodeid in ran}
    never = []
    for nodeid in sorted(collected | set(seen)):
        if nodeid in ran:
            continue
        if "::" not in nodeid and nodeid in modules_that_ran:
            continue  # a module skipped at import in one environment, run in another
        never.append((nodeid, seen.get(nodeid, ["deselected or not collected"])))
    return never


def main(argv):
    folder = Path(argv[1] if len(argv) > 1 else ".tox/test-reports")
    reports = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    if not reports:
        print(f"no test reports in {folder}")
        return 1
    never = unrun(reports)
    total = len({n for r in reports.values() for n in r["collected"]})
    print(f"{total} tests collected in {len(reports)} environments: {', '.join(reports)}")
    for nodeid, why in never:
        print(f"  not run anywhere: {nodeid} ({'; '.join(why)})")
    print(f"{len(never)} test(s) ran in no environment")
    return 1 if never else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
