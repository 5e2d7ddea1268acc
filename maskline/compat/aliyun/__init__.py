"""The Alibaba Cloud Dyplsapi (2017-05-25) face (issue 8): ``POST /`` in RPC style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this package's models without a web framework
    from flask import Flask


def init_app(app: Flask, services: Any) -> None:
    """Register the Dyplsapi RPC endpoint on ``app``, and its CallRestrict
    interceptor with the app's webhook service."""
    from maskline.compat.aliyun.views import init_app as init_views

    init_views(app, services)
