"""What the console's nav shows beside its links: for a security admin, how
many reveal requests wait for them (issue 20), so no one has to poll the
reveals page to learn that a colleague needs a second approver; and, for an
account with a second factor, the way to its recovery codes."""

from __future__ import annotations

from typing import Any

from flask import g

from maskline.admin.accounts import SessionState
from maskline.admin.interfaces import may
from maskline.admin.views import _ctx, bp


@bp.context_processor
def _nav_counts() -> dict[str, Any]:
    state: SessionState | None = g.get("admin_state")
    if state is None or not state.complete:
        return {"reveals_waiting": 0, "has_second_factor": False}
    waiting = _ctx().reveals.waiting_for(state.identity) if may(state.identity.role, "reveal") else 0
    return {"reveals_waiting": waiting, "has_second_factor": state.totp_enrolled}
