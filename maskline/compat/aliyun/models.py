"""Tables of this compatibility face (none yet)."""

from __future__ import annotations
