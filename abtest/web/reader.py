"""Reader-facing pages: the front page, the click redirect, the story, health."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, render_template

from ..service import ActionRefused, UnknownExperiment
from ..store import StoreError
from ..tokens import ExpiredToken, InvalidToken
from . import context
from .pages import RenderedPages, slot

blueprint = Blueprint("reader", __name__)


_pages = RenderedPages()


# The reader routes' paths, by plain concatenation: url_for costs more than the
# rest of a returning visitor's request (docs/performance.md).  The routes are
# the ones below; tests/test_reader.py compares the API's URLs with url_for's.
def click_path(root: str, token: str) -> str:
    return f"{root}/c/{token}"


def article_path(root: str, slug: str) -> str:
    return f"{root}/articles/{slug}"


@blueprint.get("/")
def front():
    state = context.reader()
    root = state.request.script_root
    assignments = state.service.assign(
        state.visitor, [e.slug for e in state.service.front_page()], count=state.counts
    )
    key = ("front", root) + tuple(
        (a.experiment.definition, a.variant, a.click_token is not None) for a in assignments
    )

    def render() -> str:
        teasers = [
            {
                "headline": a.headline,
                "lede": a.experiment.definition.body[0],
                "url": click_path(root, slot(i))
                if a.click_token is not None
                else article_path(root, a.experiment.slug),
            }
            for i, a in enumerate(assignments)
        ]
        return render_template("front.html", teasers=teasers)

    page = _pages.page(key, [a.click_token for a in assignments], render)
    return context.finish(state, context.ReaderResponse(page))


@blueprint.get("/articles/<slug>")
def article(slug: str):
    state = context.reader()
    try:
        (assignment,) = state.service.assign(state.visitor, [slug], count=state.counts)
    except UnknownExperiment:
        abort(404, description="There is no story at this address.")
    definition = assignment.experiment.definition
    page = _pages.page(
        ("article", state.request.script_root, definition, assignment.variant),
        [],
        lambda: render_template("article.html", headline=assignment.headline, body=definition.body),
    )
    return context.finish(state, context.ReaderResponse(page))


@blueprint.get("/c/<token>")
def click(token: str):
    state = context.reader()
    service = state.service
    try:
        click_token = service.click_tokens.loads(token)
    except ExpiredToken as expired:
        # A genuine link left open too long: take the reader to the story, uncounted.
        if expired.token is None:
            abort(400, description="This link is not valid.")
        return _to_article(state, expired.token.slug)
    except InvalidToken:
        abort(400, description="This link is not valid.")
    if not state.counts:
        return _to_article(state, click_token.slug)
    try:
        service.click(click_token, state.cookie)
    except UnknownExperiment:
        abort(404, description="There is no story at this address.")
    except ActionRefused as refused:
        abort(403, description=f"This click was not counted: {refused}.")
    except StoreError:
        pass  # Redis hiccup: the reader still gets the story; the click is lost, not faked.
    return _see_article(state, click_token.slug)


def _to_article(state: context.Reader, slug: str) -> Response:
    """303 to the story, or 404 if there is none (for links not counted)."""
    try:
        state.service.experiment(slug)
    except UnknownExperiment:
        abort(404, description="There is no story at this address.")
    return _see_article(state, slug)


def _see_article(state: context.Reader, slug: str) -> Response:
    # A bare 303: werkzeug's redirect() also renders an HTML body nobody reads.
    location = article_path(state.request.script_root, slug)
    response = context.ReaderResponse(b"", status=303, headers=[("Location", location)])
    return context.finish(state, response)


@blueprint.get("/healthz")
def healthz():
    healthy, reason = context.service().health()
    if healthy:
        return jsonify(status="ok", redis="ok")
    return jsonify(status="unavailable", redis=reason), 503
