"""Reader-facing pages: the front page, the click redirect, the story."""

from __future__ import annotations

import re

from flask import Blueprint, abort, render_template

from ..service import ActionRefused, InvalidLink, UnknownExperiment
from . import context
from .pages import RenderedPages, slot
from .shortcuts import ReaderResponse, article_path, click_path

blueprint = Blueprint("reader", __name__)


_pages = RenderedPages()


@blueprint.get("/")
def front():
    state = context.reader()
    root = state.request.script_root
    assignments = state.assign([e.slug for e in state.service.front_page()])
    key = ("front", root) + tuple(
        (a.experiment.definition, a.variant, a.click_token is not None, a.seen) for a in assignments
    )

    def render() -> str:
        teasers = [
            {
                "headline": a.headline,
                "lede": a.experiment.definition.body[0],
                "url": click_path(root, slot(i))
                if a.click_token is not None
                else article_path(root, a.experiment.slug),
                # The seen beacon's token (the same as the link's), unless seen already.
                "token": slot(i) if a.click_token is not None and not a.seen else None,
            }
            for i, a in enumerate(assignments)
        ]
        return render_template("front.html", teasers=teasers)

    page = _pages.page(key, [a.click_token for a in assignments], render)
    return context.finish(state, ReaderResponse(page))


@blueprint.get("/articles/<slug>")
def article(slug: str):
    state = context.reader()
    try:
        (assignment,) = state.assign([slug])
    except UnknownExperiment:
        abort(404, description="There is no story at this address.")
    definition = assignment.experiment.definition
    page = _pages.page(
        ("article", state.request.script_root, definition, assignment.variant),
        [],
        lambda: render_template(
            "article.html", headline=assignment.headline, body=definition.body, slug=slug
        ),
    )
    return context.finish(state, ReaderResponse(page))


@blueprint.get("/c/<token>")
def click(token: str):
    state = context.reader()
    try:
        outcome = state.service.read_click(
            token, state.cookie, count=state.counts, client=state.client, excluded=state.excluded
        )
    except InvalidLink:
        abort(400, description="This link is not valid.")
    except UnknownExperiment:
        abort(404, description="There is no story at this address.")
    except ActionRefused as refused:
        abort(403, description=f"This click was not counted: {refused}.")
    # A bare 303: werkzeug's redirect() also renders an HTML body nobody reads.
    # Only a link with a query (the snippet's, going on to the site's page) is parsed.
    onward = state.request.environ.get("QUERY_STRING") and local_path(state.request.args.get("to"))
    location = onward or article_path(state.request.script_root, outcome.slug)
    response = ReaderResponse(b"", status=303, headers=[("Location", location)])
    return context.finish(state, response)


# A path on this site: one slash, then no second slash or backslash (which
# browsers read as another host), and nothing but printable ASCII.
_LOCAL_PATH = re.compile(r"/(?![/\\])[\x21-\x7e]{0,2047}")


def local_path(to: str | None) -> str | None:
    """``to`` when it is a path on this site (where a page's own link went: the
    snippet sends the click through here, then on to the page's story); None
    for anything else, so the click never redirects to another host."""
    if to and _LOCAL_PATH.fullmatch(to) and "\\" not in to:
        return to
    return None
