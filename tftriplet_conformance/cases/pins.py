"""Cases that pin a rule of the contract which a plausible implementation gets wrong."""

from __future__ import annotations
