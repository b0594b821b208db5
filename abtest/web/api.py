"""The JSON API: assignment for pages that aren't ours; stats and actions for editors.

The actions (pause, resume, decide, reopen) take the Bearer API token only,
not an editor's session cookie: a cookie rides along on requests other sites
make, a token never does.  They go through the service's own methods, so
each lands in the experiment's audit log, with ``api`` as the editor.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request, session

from ..model import SLUG_RE
from ..service import ActionRefused, InvalidLink, UnknownExperiment
from . import context, openapi
from .ops import bearer_matches
from .shortcuts import ReaderResponse, article_path, click_path

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
blueprint.add_url_rule(openapi.PATH, "openapi", openapi.view)


@blueprint.get("/experiments/<slug>/assignment")
def assignment(slug: str):
    state = context.reader()
    try:
        (chosen,) = state.assign([slug])
    except UnknownExperiment:
        abort(404, description=f"no experiment {slug!r}")
    # Never from the request's Host (a client chooses it): the configured
    # public URL, else a path from the site's root.
    base = state.extension["settings"].public_url or state.request.script_root
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


#: The most slugs one batch request may ask for: a page's tested slots, not a catalogue.
MAX_BATCH = 20


def _slots(raw: str | None) -> list[str]:
    """The distinct slugs of ``?slugs=a,b,c`` in order; ValueError says what is wrong."""
    if not raw:
        raise ValueError("send ?slugs= followed by experiment slugs separated by commas")
    slugs = list(dict.fromkeys(part.strip() for part in raw.split(",")))
    if len(slugs) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} different slugs per request, not {len(slugs)}")
    for slug in slugs:
        if not SLUG_RE.match(slug):
            raise ValueError(f"{slug[:70]!r} is not a slug (lowercase letters, digits, hyphens)")
    return slugs


@blueprint.get("/assignments")
def assignments():
    """Every slot of a page in one request and one round trip: what /abtest.js asks for.

    An unknown slug (or a draft) is listed under ``unknown`` rather than
    failing the batch: one stale slot on a page must not cost the others.
    """
    try:
        slugs = _slots(request.args.get("slugs"))
    except ValueError as malformed:
        return _error(400, str(malformed))
    state = context.reader()
    unknown = []
    # Unknown slugs are refused before anything is counted or sent to Redis,
    # so dropping one and asking again costs nothing.
    while True:
        try:
            chosen = state.assign(slugs) if slugs else []
            break
        except UnknownExperiment as missing:
            (slug,) = missing.args
            slugs.remove(slug)
            unknown.append(slug)
    base = state.extension["settings"].public_url or state.request.script_root
    document = {
        "assignments": [
            {
                "experiment": slug,
                "variant": one.variant,
                "headline": one.headline,
                "click_url": article_path(base, slug)
                if one.click_token is None
                else click_path(base, one.click_token),
                # What the page's seen beacon sends back (POST /api/v1/seen); null
                # when there is nothing to report: not counted (paused, decided,
                # bots, Redis away), or seen already.
                "token": None if one.seen else one.click_token,
            }
            for slug, one in zip(slugs, chosen, strict=True)
        ],
        "unknown": unknown,
    }
    body = current_app.json.dumps(document, separators=(",", ":")) + "\n"
    return context.finish(state, ReaderResponse(body, mimetype="application/json"))


#: The largest beacon body read (bytes): a page's tokens, with room to spare.
MAX_BEACON_BYTES = 16_384


def _beacon() -> dict:
    """A beacon's JSON object.  ``navigator.sendBeacon`` sends a string as
    ``text/plain`` (a request any page may make without asking the server
    first), so the body is read as JSON whatever its type.  ValueError says
    what is wrong."""
    if (request.content_length or 0) > MAX_BEACON_BYTES:
        raise ValueError(f"a beacon is at most {MAX_BEACON_BYTES} bytes")
    raw = request.get_data(cache=False)[: MAX_BEACON_BYTES + 1]
    if len(raw) > MAX_BEACON_BYTES:
        raise ValueError(f"a beacon is at most {MAX_BEACON_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValueError("send a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


@blueprint.post("/seen")
def seen():
    """A page's seen beacon: ``{"tokens": [...]}``, the tokens of the assignments
    whose slot was at least half in view for a second (see /abtest.js).

    204 whether or not each was counted (repeats, tokens over an hour old and stories
    no longer running count nothing); 400 for a malformed body or a token this
    service did not sign, 403 for a token issued to another browser: then
    nothing of the beacon is counted.
    """
    try:
        tokens = _beacon().get("tokens")
        if (
            not isinstance(tokens, list)
            or not tokens
            or not all(isinstance(token, str) and 0 < len(token) < 512 for token in tokens)
        ):
            raise ValueError('send {"tokens": [...]}, the tokens of the assignments seen')
        if len(tokens) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} tokens per beacon, not {len(tokens)}")
    except ValueError as malformed:
        return _error(400, str(malformed))
    state = context.reader()
    if state.counts:
        try:
            _, visitor = state.service.record_seen(tokens, state.visitor, client=state.client)
            # The cookie remembers what was seen: this reader's pages ask no more.
            state.remember(visitor)
        except InvalidLink as invalid:
            return _error(400, str(invalid))
        except ActionRefused as refused:
            return _error(403, str(refused))
    return context.finish(state, ReaderResponse(b"", status=204))


@blueprint.post("/engaged")
def engaged():
    """A story page's engaged-time beacon: ``{"experiment": slug, "seconds": n}``,
    sent once the reader's engaged time reached the quality-click threshold.

    The visitor's counted click on that story becomes a quality click (once).
    204 whether or not anything was counted; 400 for a malformed body, 404
    for an unknown story.
    """
    try:
        body = _beacon()
        slug, seconds = body.get("experiment"), body.get("seconds")
        if not isinstance(slug, str) or not SLUG_RE.match(slug):
            raise ValueError('send {"experiment": "<slug>", "seconds": <engaged seconds>}')
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError("seconds must be a number of seconds, 0 or more")
    except ValueError as malformed:
        return _error(400, str(malformed))
    state = context.reader()
    if state.counts:
        try:
            state.service.record_engaged(slug, state.cookie, float(seconds))
        except UnknownExperiment:
            return _error(404, f"no experiment {slug!r}")
    return context.finish(state, ReaderResponse(b"", status=204))


#: The snippet pages include; it holds nothing per reader, so caches may keep it a while.
SNIPPET = Path(__file__).resolve().parent / "static" / "abtest.js"
SNIPPET_MAX_AGE = 300
#: The line of the snippet that carries the quality-click threshold, as the file has it.
QUALITY_LINE = "var QUALITY_SECONDS = 15;"


@functools.lru_cache(maxsize=8)
def snippet_text(quality_seconds: float) -> str:
    """The snippet as served: the file with this service's quality-click threshold."""
    text = SNIPPET.read_text(encoding="utf-8")
    if QUALITY_LINE not in text:
        raise RuntimeError(f"{SNIPPET} lost its line {QUALITY_LINE!r}")
    return text.replace(QUALITY_LINE, f"var QUALITY_SECONDS = {quality_seconds:g};")


def snippet():
    """``GET /abtest.js``: at the site's root (or the path abtest is mounted under)."""
    body = snippet_text(context.settings().quality_seconds)
    response = current_app.response_class(body, mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = SNIPPET_MAX_AGE
    response.add_etag()
    return response.make_conditional(request)


blueprint.record_once(
    lambda setup: setup.app.add_url_rule("/abtest.js", "snippet", snippet, methods=["GET"])
)


def editor_allowed() -> bool:
    """A signed-in editor, or the right Bearer token."""
    editor = session.get("editor")
    if editor:
        # The dashboard's list of editors, re-read when it changes: a removed
        # editor's session stops working here too.
        editors = current_app.extensions.get("dashboard", {}).get("editors")
        return editors is None or editors.exists(editor)
    return bearer_matches(context.settings().api_token)


#: What a refused caller must send, spelled out in words: a placeholder in angle
#: brackets vanishes wherever the message is shown as HTML.
SEND_TOKEN = (
    "send the header Authorization: Bearer followed by a space and the API token "
    "(ABTEST_API_TOKEN; in development, the api_token file in the data directory)"
)


def _error(status: int, message: str, **headers: str):
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


@blueprint.get("/experiments/<slug>/stats")
def stats(slug: str):
    if not editor_allowed():
        return _error(
            401,
            f"sign in as an editor, or {SEND_TOKEN}",
            **{"WWW-Authenticate": 'Bearer realm="abtest"'},
        )
    try:
        document = context.service().report(slug).to_json()
    except UnknownExperiment:
        abort(404, description=f"no experiment {slug!r}")
    return jsonify(document)


#: The editor named in the audit log for actions taken on the API.
API_EDITOR = "api"


class _Malformed(ValueError):
    """The request's body is not what the action needs (400)."""


def _act(slug: str, action):
    """Run ``action(service)`` for a Bearer-token caller; the experiment's new state as JSON.

    Refusals in this order: no token configured (403), a missing or wrong
    token (401), an unknown slug (404), a malformed body (400), an action the
    experiment's state does not allow (409).
    """
    token = context.settings().api_token
    if not token:
        return _error(403, "actions on the API are off: set ABTEST_API_TOKEN")
    if not bearer_matches(token):
        return _error(
            401,
            SEND_TOKEN,
            **{"WWW-Authenticate": 'Bearer realm="abtest"'},
        )
    try:
        experiment = action(context.service())
    except UnknownExperiment:
        return _error(404, f"no experiment {slug!r}")
    except _Malformed as malformed:
        return _error(400, str(malformed))
    except ActionRefused as refused:
        return _error(409, str(refused))
    return jsonify(experiment=experiment.slug, status=experiment.status, winner=experiment.winner)


@blueprint.post("/experiments/<slug>/pause")
def pause(slug: str):
    return _act(slug, lambda service: service.pause(slug, API_EDITOR))


@blueprint.post("/experiments/<slug>/resume")
def resume(slug: str):
    return _act(slug, lambda service: service.resume(slug, API_EDITOR))


@blueprint.post("/experiments/<slug>/reopen")
def reopen(slug: str):
    return _act(slug, lambda service: service.reopen(slug, API_EDITOR))


@blueprint.post("/experiments/<slug>/decide")
def decide(slug: str):
    body = request.get_json(force=True, silent=True)
    variant = body.get("variant") if isinstance(body, dict) else None

    def choose(service):
        experiment = service.fresh(slug)
        if not isinstance(variant, str) or not variant.strip():
            raise _Malformed('send JSON {"variant": "<variant id>"}, e.g. {"variant": "b"}')
        chosen = variant.strip().lower()
        if chosen not in experiment.variant_ids:
            raise _Malformed(
                f"no variant {variant[:40]!r} in {slug!r}: "
                f"choose one of {', '.join(experiment.variant_ids)}"
            )
        return service.decide(slug, chosen, API_EDITOR)

    return _act(slug, choose)
