"""A database outage, answered by each face in its own shape (issue 21).

Blueprints used to copy the same three handlers: the driver errors that mean
"the database cannot be reached", a warning naming only the error's type, and
the face's 503. :func:`answer_database_outages` registers them once per face;
each face passes the function that renders its "unavailable" answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# What a request sees while the database restarts or is down: the server
# is gone (OperationalError), the connection broke (InterfaceError), or no
# pooled connection came free in time.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
DATABASE_DOWN_MESSAGE = "the database cannot be reached; retry later"


def answer_database_outages(
    bp: Blueprint,
    *,
    face: str,
    log: logging.Logger,
    unavailable: Callable[[str], ResponseReturnValue],
    also: tuple[type[Exception], ...] = (),
) -> None:
    """On ``bp``, answer :data:`DATABASE_DOWN` (and the face's own kinds in
    ``also``) with ``unavailable(message)``: a clean 503 in the face's shape,
    never a 500."""

    def database_unavailable(exc: Exception) -> ResponseReturnValue:
        # The type only in the log: a driver's message can quote the statement.
        log.warning("%s request failed: database unavailable (%s)", face, type(exc).__name__)
        return unavailable(DATABASE_DOWN_MESSAGE)

    for kind in (*DATABASE_DOWN, *also):
        bp.register_error_handler(kind, database_unavailable)
