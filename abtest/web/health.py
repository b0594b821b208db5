"""Health checks."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import context

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    healthy, reason = context.service().health()
    if healthy:
        return jsonify(status="ok", redis="ok")
    return jsonify(status="unavailable", redis=reason), 503
