"""The dashboard's views of an experiment's life: edit the text, preview each
headline as readers will see it, start, schedule, unschedule, archive,
unarchive, and the front page's order.

Routes on the dashboard's blueprint (:mod:`.views`), so the same sign-in,
CSRF and error handling apply: every POST here carries a CSRF token, every
page needs a signed-in editor, and every action goes through
:class:`abtest.service.Service`, which keeps it in the audit log and refuses
it, in words, where it does not apply (:func:`abtest.model.refusal`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, g, redirect, render_template, request, url_for

from abtest.model import (
    DECIDED,
    DRAFT,
    PAUSED,
    SCHEDULED,
    VARIANT_IDS,
    Definition,
    Experiment,
    InvalidExperiment,
    refusal,
)
from abtest.service import ActionRefused

from . import present
from .views import _back_to, _every, _experiment_or_404, _service, blueprint

__all__ = ["life", "parse_start", "START_FORMAT", "definition_from_form"]

#: What a ``datetime-local`` field sends (its seconds only with ``step`` under 60).
START_FORMAT = "%Y-%m-%dT%H:%M"


def parse_start(text: str | None) -> float | None:
    """A start time typed in the form (UTC, ``2026-12-02T09:30``, seconds optional)
    as Unix seconds; None if it is not one."""
    text = (text or "").strip()
    for pattern in (START_FORMAT, START_FORMAT + ":%S"):
        try:
            moment = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return moment.replace(tzinfo=UTC).timestamp()
    return None


def start_value(timestamp: float) -> str:
    """Unix seconds as the form's start-time field shows them (UTC)."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime(START_FORMAT)


def _until(seconds: float) -> str:
    """How long until a moment: "in 5 minutes", "in 2 hours" (from :func:`present.ago`)."""
    words = present.ago(seconds)
    return "any moment now" if words == "just now" else "in " + words.removesuffix(" ago")


def life(experiment: Experiment, now: float) -> dict:
    """What the experiment page's publishing block shows: the actions that apply,
    why editing doesn't, where the story is on the front page, the previews."""
    can = {
        action: refusal(experiment, action) is None
        for action in ("start", "schedule", "unschedule", "edit", "archive", "unarchive", "move")
    }
    front = _service().front_page()
    position = next((i for i, e in enumerate(front, start=1) if e.slug == experiment.slug), None)
    starts_at = experiment.starts_at
    return {
        "can": can,
        "edit_refusal": refusal(experiment, "edit"),
        "position": position,
        "stories": len(front),
        "starts_at": present.utc(starts_at) if starts_at else None,
        "starts_in": _until(starts_at - now) if starts_at else None,
        "start_value": start_value(starts_at if starts_at else now + 3600),
        "now_utc": present.utc(now),
        "archived_at": present.utc(experiment.archived_at) if experiment.archived else None,
        "serves": experiment.definition.headline(experiment.default_variant),
        "previews": [
            {
                "label": variant.upper(),
                "headline": experiment.definition.headline(variant),
                "front": url_for("dashboard.preview", slug=experiment.slug, variant=variant),
                "story": url_for(
                    "dashboard.preview", slug=experiment.slug, variant=variant, page="story"
                ),
            }
            for variant in experiment.variant_ids
        ],
    }


def _refused(refused: ActionRefused | str):
    flash(f"Nothing changed: {refused}.", "error")


# -- start, schedule, unschedule ---------------------------------------------------


@blueprint.post("/<slug>/start")
def start(slug: str):
    _experiment_or_404(slug)
    try:
        _service().start(slug, g.editor)
    except ActionRefused as refused:
        _refused(refused)
    else:
        flash(
            "Started. The story is first on the front page and readers are being tested.", "success"
        )
    return _back_to(slug)


@blueprint.post("/<slug>/schedule")
def schedule(slug: str):
    _experiment_or_404(slug)
    starts_at = parse_start(request.form.get("starts_at"))
    if starts_at is None:
        abort(400, description="Nothing changed: give the start time as a date and a time (UTC).")
    try:
        scheduled = _service().schedule(slug, starts_at, g.editor)
    except InvalidExperiment as invalid:
        _refused("; ".join(invalid.errors.values()))
    except ActionRefused as refused:
        _refused(refused)
    else:
        flash(
            f"Scheduled for {present.utc(scheduled.starts_at)}. The story goes live by itself "
            "then; until then readers can't see it.",
            "success",
        )
    return _back_to(slug)


@blueprint.post("/<slug>/unschedule")
def unschedule(slug: str):
    _experiment_or_404(slug)
    try:
        _service().unschedule(slug, g.editor)
    except ActionRefused as refused:
        _refused(refused)
    else:
        flash("Unscheduled. The story is a draft again and won't go live by itself.", "success")
    return _back_to(slug)


# -- archive -------------------------------------------------------------------------


@blueprint.post("/<slug>/archive")
def archive(slug: str):
    _experiment_or_404(slug)
    try:
        archived = _service().archive(slug, g.editor)
    except ActionRefused as refused:
        _refused(refused)
    else:
        serves = archived.definition.headline(archived.default_variant)
        flash(
            f"Archived. The story is off the front page; its address still serves “{serves}”.",
            "success",
        )
    return _back_to(slug)


@blueprint.post("/<slug>/unarchive")
def unarchive(slug: str):
    _experiment_or_404(slug)
    try:
        _service().unarchive(slug, g.editor)
    except ActionRefused as refused:
        _refused(refused)
    else:
        flash("Unarchived. The story is back on the front page, where it was.", "success")
    return _back_to(slug)


@blueprint.get("/archived")
def archived():
    service = _service()
    now = service.clock()
    rows = [
        {
            "slug": e.slug,
            "title": e.definition.title,
            "status": e.status,
            "serves": e.definition.headline(e.default_variant),
            "label": e.default_variant.upper(),
            "archived": present.utc(e.archived_at),
            "ago": present.ago(now - e.archived_at),
            "impressions": present.count(e.counted),
        }
        for e in sorted(service.fresh_all(), key=lambda e: -(e.archived_at or 0))
        if e.archived
    ]
    return render_template("dashboard_archived.html", rows=rows)


# -- the front page's order ----------------------------------------------------------


@blueprint.get("/front-page")
def front_page():
    stories = _service().front_page_order()
    rows = [
        {
            "slug": e.slug,
            "title": e.definition.title,
            "status": e.status,
            "position": position,
            "serves": (
                f"{len(e.variant_ids)} headlines tested"
                if e.status not in (PAUSED, DECIDED)
                else f"{e.default_variant.upper()}: {e.definition.headline(e.default_variant)}"
            ),
        }
        for position, e in enumerate(stories, start=1)
    ]
    return render_template("dashboard_front_page.html", rows=rows)


@blueprint.post("/<slug>/move")
def move(slug: str):
    """Move a story on the front page: ``direction`` up, down or top, or to ``position``."""
    service = _service()
    _experiment_or_404(slug)
    stories = [e.slug for e in service.front_page_order()]
    direction = request.form.get("direction")
    if direction is not None:
        if direction not in ("up", "down", "top"):
            abort(400, description="Nothing changed: move a story up, down or to the top.")
        at = stories.index(slug) + 1 if slug in stories else 1
        position = {"up": at - 1, "down": at + 1, "top": 1}[direction]
    else:
        try:
            position = int(request.form.get("position", "").strip())
        except ValueError:
            position = 0
        if position < 1:
            abort(400, description="Nothing changed: give a position of 1 or more (1 is the top).")
    try:
        if position < 1:  # moving up from the top: nowhere to go
            raise ActionRefused("the story is at the top already")
        moved = service.move(slug, position, g.editor)
    except ActionRefused as refused:
        _refused(refused)
    else:
        at = [e.slug for e in service.front_page_order()].index(slug) + 1
        flash(f"Moved: “{moved.definition.title}” is number {at} on the front page.", "success")
    if request.form.get("back") == "front-page":
        return redirect(url_for("dashboard.front_page"), code=303)
    return _back_to(slug)


# -- edit ----------------------------------------------------------------------------


def definition_from_form(slug: str, form) -> Definition:
    """The story's text from the edit form; raises :class:`InvalidExperiment`."""
    headlines = [line.strip() for line in form.get("headlines", "").splitlines() if line.strip()]
    return Definition.from_mapping(
        {
            "slug": slug,
            "title": form.get("title", ""),
            "headlines": headlines,
            "body": form.get("body", ""),
        }
    )


@blueprint.route("/<slug>/edit", methods=["GET", "POST"])
def edit(slug: str):
    experiment = _experiment_or_404(slug)
    definition = experiment.definition
    values = {
        "title": definition.title,
        "headlines": "\n".join(definition.headlines),
        "body": "\n\n".join(definition.body),
    }
    errors: dict[str, str] = {}
    refused = refusal(experiment, "edit")
    status = 200 if refused is None else 409
    if request.method == "POST":
        values = {field: request.form.get(field, "") for field in values}
        try:
            changed = definition_from_form(slug, request.form)
        except InvalidExperiment as invalid:
            errors = dict(invalid.errors)
            status = 422
        else:
            try:
                _service().edit(slug, changed, g.editor)
            except ActionRefused as refusal_now:
                refused, status = str(refusal_now), 409
            else:
                flash(
                    "Saved. Readers get the new text within a second"
                    + (
                        "; counting waits a few seconds until every server has it."
                        if experiment.status not in (DRAFT, SCHEDULED)
                        else "."
                    ),
                    "success",
                )
                return _back_to(slug)
    return (
        render_template(
            "dashboard_edit.html",
            experiment=experiment,
            values=values,
            errors=errors,
            refused=refused,
        ),
        status,
    )


# -- preview -------------------------------------------------------------------------


@blueprint.get("/<slug>/preview")
def preview(slug: str):
    """One headline as readers will see it, on the front page (``page=front``, the
    default) or on the story's own page (``page=story``), rendered with the
    reader templates; the front page has the other stories in their places."""
    experiment = _experiment_or_404(slug)
    raw = request.args.get("variant", "a")
    variant = raw.strip().lower()
    if variant not in VARIANT_IDS:
        abort(400, description=f"“{raw[:40]}” is not a headline's letter.")
    if variant not in experiment.variant_ids:
        abort(404, description=f"This experiment has no headline {variant.upper()}.")
    page = request.args.get("page", "front")
    if page not in ("front", "story"):
        abort(400, description="page must be front or story")
    definition = experiment.definition
    headline = definition.headline(variant)
    story_url = url_for("dashboard.preview", slug=slug, variant=variant, page="story")
    back = url_for("dashboard.experiment", slug=slug, every=_every())
    note = {
        "label": variant.upper(),
        "back": back,
        "other": url_for("dashboard.preview", slug=slug, variant=variant)
        if page == "story"
        else story_url,
        "other_name": "the front page" if page == "story" else "the story page",
    }
    if page == "story":
        return render_template(
            "dashboard_preview_story.html", headline=headline, body=definition.body, note=note
        )
    teasers = []
    placed = False
    for other in _service().front_page():
        if other.slug == slug:
            placed = True
            teasers.append({"headline": headline, "lede": definition.body[0], "url": story_url})
            continue
        default = other.default_variant
        teasers.append(
            {
                "headline": other.definition.headline(default),
                "lede": other.definition.body[0],
                "url": url_for("dashboard.preview", slug=other.slug, variant=default, page="story"),
            }
        )
    if not placed and not experiment.archived:  # not live yet: it will go live at the top
        teasers.insert(0, {"headline": headline, "lede": definition.body[0], "url": story_url})
    note["archived"] = experiment.archived
    return render_template("dashboard_preview_front.html", teasers=teasers, note=note)
