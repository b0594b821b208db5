"""Error pages: a short message, HTML for pages and JSON for the API; never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from ..service import StoreError

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/dashboard/api/")


def _render(status: int, title: str, message: str):
    if _wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, title=title, message=message), status


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = _render(error.code or 500, error.name, error.description or error.name)
        if error.code == 405 and error.valid_methods:
            return response[0], response[1], {"Allow": ", ".join(error.valid_methods)}
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        # Raised from Content-Length, before any of the body is read.
        limit = app.config["MAX_CONTENT_LENGTH"]
        return _render(
            413,
            error.name,
            f"This request is larger than the {limit:,} bytes this site accepts.",
        )

    @app.errorhandler(StoreError)
    def store_error(error: StoreError):
        log.warning("Redis unavailable on %s: %s", request.path, error)
        response = _render(
            503,
            "Service Unavailable",
            "The service can't reach its database right now. Please try again in a moment.",
        )
        return response[0], response[1], {"Retry-After": "5"}

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s", request.path)
        return _render(500, InternalServerError.name, "Something went wrong on our side.")
