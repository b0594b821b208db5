"""The JSON API: assignment for pages that aren't ours, stats for editors."""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, current_app, jsonify, request, session

from ..service import UnknownExperiment
from . import context
from .shortcuts import ReaderResponse, article_path, click_path

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


@blueprint.get("/experiments/<slug>/assignment")
def assignment(slug: str):
    state = context.reader()
    try:
        (chosen,) = state.assign([slug])
    except UnknownExperiment:
        abort(404, description=f"no experiment {slug!r}")
    base = request.host_url[:-1] + request.script_root  # url_for(..., _external=True)'s
    if chosen.click_token is None:
        click_url = article_path(base, slug)
    else:
        click_url = click_path(base, chosen.click_token)
    document = {
        "experiment": slug,
        "variant": chosen.variant,
        "headline": chosen.headline,
        "click_url": click_url,
    }
    # jsonify's compact document, sent with its headers as they are (see ReaderResponse).
    body = current_app.json.dumps(document, separators=(",", ":")) + "\n"
    return context.finish(state, ReaderResponse(body, mimetype="application/json"))


def editor_allowed() -> bool:
    """A signed-in editor, or the right Bearer token."""
    editor = session.get("editor")
    if editor:
        # The dashboard's list of editors, re-read when it changes: a removed
        # editor's session stops working here too.
        editors = current_app.extensions.get("dashboard", {}).get("editors")
        return editors is None or editors.exists(editor)
    token = context.settings().api_token
    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    return bool(
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(supplied.strip().encode(), token.encode())
    )


@blueprint.get("/experiments/<slug>/stats")
def stats(slug: str):
    if not editor_allowed():
        response = jsonify(error="sign in as an editor or send Authorization: Bearer <token>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="abtest"'
        return response
    try:
        document = context.service().report(slug).to_json()
    except UnknownExperiment:
        abort(404, description=f"no experiment {slug!r}")
    return jsonify(document)
