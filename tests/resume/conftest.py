import sys
from pathlib import Path

# The process helpers (start, finish, kill) of tests/distributed/processes.py are shared.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distributed"))
