"""The dashboard's routes: sign-in, the experiments list, one experiment live,
the editor actions, the new-experiment form, exports and the JSON the live
page polls.

Every route but sign-in and the static files needs a signed-in editor
(``session["editor"]``): pages redirect to the sign-in form, JSON under
``/dashboard/api/`` answers 401.  Every POST carries a CSRF token (Flask-WTF's
``CSRFProtect``, set up in :func:`abtest.dashboard.init_app`).  The dashboard
reads and acts only through :class:`abtest.service.Service`; chart data comes
from :mod:`abtest.chartdata`, words from :mod:`abtest.verdicts` (through
:mod:`.present`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from abtest import chartdata, verdicts, webhooks
from abtest.model import (
    CLICK,
    CLICKS,
    DECIDED,
    DEFAULT_CARING,
    DRAFT,
    PAUSED,
    RUNNING,
    SCHEDULED,
    SERVED,
    VARIANT_IDS,
    Definition,
    InvalidExperiment,
    check_measures,
    check_settings,
)
from abtest.service import ActionRefused, Service, UnknownExperiment
from abtest.sessions import SessionStore, SignInThrottle

from . import charts, present
from .auth import Editors, safe_next

blueprint = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: Paths under /dashboard/ that can't be experiment slugs.
PUBLIC_ENDPOINTS = frozenset({"dashboard.login", "dashboard.static"})

# -- plumbing ------------------------------------------------------------------


def _service() -> Service:
    return current_app.extensions["abtest"]["service"]


def _editors() -> Editors:
    return current_app.extensions["dashboard"]["editors"]


def _sessions() -> SessionStore:
    return current_app.extensions["abtest"]["sessions"]


def _config(name: str):
    return current_app.config[name]


def _is_api() -> bool:
    """The JSON endpoints under /dashboard/api/ (401 and JSON errors, never redirects)."""
    return (request.endpoint or "").startswith("dashboard.api_")


@blueprint.before_request
def _protect_state_changes() -> None:
    """CSRF: every POST, PUT, PATCH and DELETE here needs Flask-WTF's token
    (the dashboard has the app's only such routes)."""
    if request.method in current_app.config["WTF_CSRF_METHODS"]:
        current_app.extensions["csrf"].protect()


@blueprint.before_request
def _require_editor():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    editor = session.get("editor")
    if editor and _editors().exists(editor):
        g.editor = editor
        return None
    if editor:
        # The account was removed since sign-in: every session of that name
        # ends, so adding the name back later revives none of them.
        _sessions().delete_all(editor)
        session.clear()
    if _is_api():
        return jsonify(error="sign in to the dashboard first"), 401
    target = request.full_path if request.query_string else request.path
    code = 302 if request.method in ("GET", "HEAD") else 303
    return redirect(url_for("dashboard.login", next=target), code=code)


@blueprint.after_request
def _headers(response: Response) -> Response:
    # The security headers (CSP and the rest) are the app's, on every response
    # (abtest.web.headers); the dashboard's pages are also never cached.
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
    return response


@blueprint.errorhandler(CSRFError)
def _csrf_error(error: CSRFError):
    current_app.logger.warning("refused %s %s: %s", request.method, request.path, error.description)
    if _is_api():
        return jsonify(error="missing or invalid CSRF token"), 400
    return (
        render_template(
            "dashboard_message.html",
            title="This form has expired",
            message=(
                "The form was not sent from an open dashboard page, or it is too old. "
                "Nothing was changed. Go back, reload the page and try again."
            ),
        ),
        400,
    )


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    code = error.code or 500
    if _is_api():
        return jsonify(error=error.description or error.name), code
    return (
        render_template("dashboard_message.html", title=error.name, message=error.description),
        code,
    )


def _every() -> str | None:
    """``?every=`` (seconds between live updates), kept across the dashboard's links."""
    raw = request.args.get("every")
    try:
        seconds = float(raw) if raw else math.nan
    except ValueError:
        return None
    return f"{min(max(seconds, 0.5), 300.0):g}" if math.isfinite(seconds) else None


def _refresh_seconds() -> float:
    """How often the live page polls: ``?every=`` (0.5 to 300 s) or the app setting."""
    chosen = _every()
    return float(chosen) if chosen else float(_config("DASHBOARD_REFRESH_SECONDS"))


@blueprint.context_processor
def _template_context() -> dict:
    return {
        "every": _every(),
        "editor": g.get("editor"),
        "DRAFT": DRAFT,
        "SCHEDULED": SCHEDULED,
        "RUNNING": RUNNING,
        "PAUSED": PAUSED,
        "DECIDED": DECIDED,
    }


def _alpha() -> float:
    return float(_config("DASHBOARD_ALPHA"))


def _experiment_or_404(slug: str):
    try:
        return _service().fresh(slug)
    except UnknownExperiment:
        abort(404, description=f"There is no experiment {slug!r}.")


def _back_to(slug: str):
    return redirect(url_for("dashboard.experiment", slug=slug, every=_every()), code=303)


# -- sign-in -------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    default = url_for("dashboard.index")
    target = safe_next(request.values.get("next"), default)
    if session.get("editor") and _editors().exists(session["editor"]):
        return redirect(target)
    error = None
    username = ""
    status = 200
    headers = {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        throttle: SignInThrottle = current_app.extensions["dashboard"]["throttle"]
        # The client's address: the socket's, or the one the trusted proxies
        # saw (ProxyFix, ABTEST_PROXY_HOPS).
        address = request.remote_addr or "?"
        # Counted as a failure until the password proves right, in Redis, so
        # the limit is the same whichever worker or server takes the attempt.
        wait = throttle.attempt(address, username)
        if wait:
            minutes = math.ceil(wait / 60)
            until = time.strftime("%H:%M UTC", time.gmtime(time.time() + wait))
            error = (
                "Too many failed sign-ins for this name from your address. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''} (after {until})."
            )
            status = 429
            headers["Retry-After"] = str(math.ceil(wait))
            current_app.logger.warning("sign-in for %r from %s refused: locked", username, address)
        elif username and password and _editors().check(username, password):
            throttle.succeeded(address, username)
            # A fresh session for the signed-in editor: a new session id (see
            # abtest.web.shortcuts.EditorSessions) and a new CSRF secret.
            session.clear()
            session["editor"] = username
            current_app.logger.info("editor %s signed in from %s", username, address)
            return redirect(target, code=303)
        else:
            current_app.logger.warning("failed sign-in for %r from %s", username, address)
            error = "That user name and password don't match an editor account."
            status = 401
            # 401 with a form to fill in: there's no HTTP auth scheme to name.
            headers["WWW-Authenticate"] = 'FormBased realm="abtest dashboard"'
    response = render_template(
        "dashboard_login.html",
        error=error,
        username=username,
        next=target if target != default else "",
        configured=_editors().configured,
    )
    return response, status, headers


@blueprint.post("/logout")
def logout():
    """Sign out: this browser's sign-in ends now; with ``everywhere``, all of this editor's."""
    if request.form.get("everywhere"):
        ended = _sessions().delete_all(g.editor)
        message = f"You are signed out everywhere ({ended} session{'s' if ended != 1 else ''})."
        current_app.logger.info("editor %s signed out everywhere", g.editor)
    else:
        # Here, not only when the response is saved: if Redis can't be
        # reached, the editor sees a 503 rather than a false "signed out".
        _sessions().delete(session.session_id, g.editor)
        message = "You are signed out."
    session.clear()
    flash(message, "info")
    return redirect(url_for("dashboard.login"), code=303)


# -- the experiments list ----------------------------------------------------------


def _listing() -> dict:
    service = _service()
    now = service.clock()
    experiments = service.fresh_all()
    rows = [
        present.listing_row(
            service.report(e.slug, alpha=_alpha(), experiment=e, stratified=False), now
        )
        for e in experiments
        if not e.archived  # they have a list of their own (lifecycle.archived)
    ]
    archived = sum(1 for e in experiments if e.archived)
    return {"rows": rows, "updated_at": now, "archived": archived}


@blueprint.get("/")
def index():
    listing = _listing()
    return render_template(
        "dashboard_index.html",
        listing=listing,
        updated=present.clock(listing["updated_at"]),
        refresh_seconds=_refresh_seconds(),
    )


@blueprint.get("/api/experiments")
def api_experiments():
    listing = _listing()
    html = render_template("dashboard_part_list.html", listing=listing)
    return jsonify(
        updated_at=present.iso(listing["updated_at"]),
        updated_at_text=present.clock(listing["updated_at"]),
        experiments=[row | {"verdict": row["verdict"]["text"]} for row in listing["rows"]],
        fragments={"list": html},
    )


# -- one experiment --------------------------------------------------------------


def _page_model(slug: str) -> dict:
    """Everything the experiment page shows, read now."""
    service = _service()
    experiment = _experiment_or_404(slug)
    report = service.report(slug, alpha=_alpha(), experiment=experiment)
    series = service.series(slug)
    now = service.clock()
    retention = (
        service.minute_retention if series["resolution"] == "minute" else service.hour_retention
    )
    timeline = chartdata.build_timeline(
        series,
        created_at=experiment.created_at,
        now=now,
        counting=experiment.status != DECIDED,
        totals=(experiment.impressions, experiment.clicks),
        window_start=now - retention,
    )
    labels = [report.label(index) for index in range(len(report.variant_ids))]
    stats = report.stats
    return {
        "experiment": experiment,
        "life": lifecycle.life(experiment, now),
        "report": report,
        "rows": present.variant_rows(report),
        "verdict": present.verdict_view(report, timeline.readers_per_second()),
        "tests": present.tests_view(report),
        "audit": present.audit_rows(service.audit(slug, limit=50)),
        "charts": {
            "ctr": charts.ctr_chart(
                timeline,
                chartdata.bands(timeline, stats.alpha),
                labels,
                level=stats.level,
                headlines=report.headlines,
            ),
            "share": charts.share_chart(timeline, labels),
            "posterior": charts.posterior_chart(
                chartdata.curves(experiment.impressions, experiment.clicks), labels
            ),
        },
        "level": stats.level,
        "totals": present.table_totals(report),
        "seen": present.seen_view(report),
        "measures": present.measures_text(experiment.reward, experiment.denominator),
        "rate_unit": present.DENOMINATOR_WORDS.get(experiment.denominator, ""),
        "measure_choices": present.measure_choices(service.quality_seconds),
        "quality_seconds": f"{service.quality_seconds:g}",
        "allocation_name": present.allocation_name(experiment.allocation),
        "allocation_choices": present.ALLOCATION_CHOICES,
        "caring_percent": present.caring_percent(experiment.caring),
        "ago": present.ago(now - experiment.created_at),
        "started": present.utc(experiment.created_at),
        "updated_at": now,
        "updated": present.clock(now),
    }


FRAGMENTS = {
    "summary": "dashboard_part_summary.html",
    "table": "dashboard_part_table.html",
    "tests": "dashboard_part_tests.html",
    "charts": "dashboard_part_charts.html",
    "audit": "dashboard_part_audit.html",
    "lifecycle": "dashboard_part_lifecycle.html",
}


@blueprint.get("/<slug>")
def experiment(slug: str):
    model = _page_model(slug)
    # A draft or scheduled story has no readers yet: its text, previews and publishing.
    published = model["experiment"].published
    return render_template(
        "dashboard_experiment.html" if published else "dashboard_draft.html",
        m=model,
        refresh_seconds=_refresh_seconds(),
    )


@blueprint.get("/api/experiments/<slug>")
def api_experiment(slug: str):
    """The live page's data: the stats document and the re-rendered fragments."""
    model = _page_model(slug)
    fragments = {name: render_template(template, m=model) for name, template in FRAGMENTS.items()}
    return jsonify(
        experiment=slug,
        status=model["experiment"].status,
        winner=model["experiment"].winner,
        updated_at=present.iso(model["updated_at"]),
        updated_at_text=model["updated"],
        verdict=model["verdict"]["text"],
        report=model["report"].to_json(),
        fragments=fragments,
    )


# -- editor actions --------------------------------------------------------------


@blueprint.route("/<slug>/decide", methods=["GET", "POST"])
def decide(slug: str):
    service = _service()
    experiment = _experiment_or_404(slug)
    variant = (request.values.get("variant") or "").strip().lower()
    if request.method == "POST":
        if variant not in experiment.variant_ids:
            flash("Pick one of the headlines to make the winner.", "error")
            return _back_to(slug)
        try:
            decided = service.decide(slug, variant, g.editor)
        except ActionRefused as refused:
            flash(f"Nothing changed: {refused}.", "error")
            return _back_to(slug)
        flash(
            f"{variant.upper()} is the winner. Every reader now gets "
            f"“{decided.definition.headline(variant)}”.",
            "success",
        )
        return _back_to(slug)

    variant = _named_variant(experiment)
    report = service.report(slug, alpha=_alpha(), experiment=experiment)
    if variant is None:
        leader = report.stats.leader()
        variant = experiment.variant_ids[leader if leader is not None else 0]
    index = experiment.variant_ids.index(variant)
    rows = present.variant_rows(report)
    return render_template(
        "dashboard_decide.html",
        experiment=experiment,
        rows=rows,
        chosen=rows[index],
        choice=verdicts.choice(report, index),
        verdict=present.verdict_view(report),
        level=report.stats.level,
        measures=present.measures_text(experiment.reward, experiment.denominator),
        refresh_seconds=_refresh_seconds(),
    )


def _named_variant(experiment) -> str | None:
    """The headline ``?variant=`` names (any case), or None when it names none.

    A value that can't be a headline's letter is a 400, a letter this
    experiment has no headline for a 404: the confirmation never falls back
    to another headline than the one asked for.
    """
    raw = request.args.get("variant")
    if raw is None:
        return None
    variant = raw.strip().lower()
    choose = "choose one of " + ", ".join(v.upper() for v in experiment.variant_ids)
    if variant not in VARIANT_IDS:
        abort(400, description=f"“{raw[:40]}” is not a headline's letter: {choose}.")
    if variant not in experiment.variant_ids:
        abort(404, description=f"This experiment has no headline {variant.upper()}: {choose}.")
    return variant


def _action(slug: str, act, done: str):
    _experiment_or_404(slug)
    try:
        act(slug, g.editor)
    except ActionRefused as refused:
        flash(f"Nothing changed: {refused}.", "error")
    else:
        flash(done, "success")
    return _back_to(slug)


@blueprint.post("/<slug>/pause")
def pause(slug: str):
    return _action(
        slug,
        _service().pause,
        "Paused. Every reader gets headline A and nothing is counted until you resume.",
    )


@blueprint.post("/<slug>/resume")
def resume(slug: str):
    return _action(slug, _service().resume, "Resumed. New readers are being tested again.")


@blueprint.route("/<slug>/reopen", methods=["GET", "POST"])
def reopen(slug: str):
    """GET: what reopening would do, and the form that does it; POST: reopen."""
    if request.method == "POST":
        return _action(
            slug,
            _service().reopen,
            "Reopened. The winner is cleared and new readers are being tested again.",
        )
    service = _service()
    experiment = _experiment_or_404(slug)
    report = service.report(slug, alpha=_alpha(), experiment=experiment)
    rows = present.variant_rows(report)
    return render_template(
        "dashboard_reopen.html",
        experiment=experiment,
        winner=next((row for row in rows if row["winner"]), None),
        losers=[row for row in rows if not row["winner"]],
        allocation_name=present.allocation_name(experiment.allocation),
        impressions=present.count(sum(experiment.impressions)),
        clicks=present.count(sum(experiment.clicks)),
        refresh_seconds=_refresh_seconds(),
    )


CARING_ERROR = "give the threshold of caring as a percentage above 0 and below 100, e.g. 2"


def _settings_from_form() -> tuple[str, float]:
    """The allocation mode and threshold of caring (a percentage) from a form.

    Raises :class:`InvalidExperiment` with the form's words for each bad field.
    """
    # A field left out altogether (an older form, a script) means the default.
    allocation = request.form.get("allocation", CLICKS)
    typed = request.form.get("caring")
    caring = DEFAULT_CARING if typed is None else present.parse_percent(typed)
    try:
        return check_settings(allocation, caring)
    except InvalidExperiment as invalid:
        errors = dict(invalid.errors)
        if "allocation" in errors:
            errors["allocation"] = "choose maximize clicks or find the winner"
        if "caring" in errors:
            errors["caring"] = CARING_ERROR
        raise InvalidExperiment(errors) from None


def _measures_from_form(reward: str = CLICK, denominator: str = SERVED) -> tuple[str, str]:
    """The reward and the denominator from a form; a field left out (an older
    form, a script) means the one given here: the experiment's own when
    changing its settings, the defaults when creating one.

    Raises :class:`InvalidExperiment` with the form's words for each bad field.
    """
    reward = request.form.get("reward", reward)
    denominator = request.form.get("denominator", denominator)
    try:
        return check_measures(reward, denominator)
    except InvalidExperiment as invalid:
        errors = dict(invalid.errors)
        if "reward" in errors:
            errors["reward"] = "count every click or quality clicks"
        if "denominator" in errors:
            errors["denominator"] = "count per reader served or per reader who saw it"
        raise InvalidExperiment(errors) from None


def _settings_of(experiment) -> dict:
    return {
        "allocation": experiment.allocation,
        "caring": experiment.caring,
        "reward": experiment.reward,
        "denominator": experiment.denominator,
    }


@blueprint.post("/<slug>/settings")
def settings(slug: str):
    experiment = _experiment_or_404(slug)
    errors: dict[str, str] = {}
    try:
        allocation, caring = _settings_from_form()
    except InvalidExperiment as invalid:
        errors |= invalid.errors
    try:
        reward, denominator = _measures_from_form(experiment.reward, experiment.denominator)
    except InvalidExperiment as invalid:
        errors |= invalid.errors
    if errors:
        abort(400, description="Nothing changed: " + "; ".join(errors.values()) + ".")
    try:
        changed = _service().set_settings(
            slug, allocation, caring, g.editor, reward=reward, denominator=denominator
        )
    except ActionRefused as refused:
        flash(f"Nothing changed: {refused}.", "error")
    else:
        flash(present.settings_change(_settings_of(experiment), _settings_of(changed)), "success")
    return _back_to(slug)


@blueprint.post("/<slug>/webhook")
def webhook(slug: str):
    """Set or remove the story's webhook URL (:mod:`abtest.webhooks`), audited."""
    _experiment_or_404(slug)
    remove = bool(request.form.get("remove"))
    try:
        host = webhooks.notifier(current_app).set_url(
            slug, None if remove else request.form.get("url", ""), g.editor
        )
    except webhooks.InvalidWebhook as invalid:
        abort(400, description=f"Nothing changed: {invalid}.")
    except LookupError:
        abort(404, description=f"There is no experiment {slug!r}.")
    if host:
        flash(
            f"Webhook set: {host} gets word when this test is safe to stop, has a proven "
            "winner, or Redis loses its data.",
            "success",
        )
    else:
        flash("Webhook removed: this story no longer sends to its own webhook.", "success")
    return _back_to(slug)


# -- new experiments ---------------------------------------------------------------


@blueprint.route("/new", methods=["GET", "POST"])
def new():
    values = {
        "slug": "",
        "title": "",
        "headlines": "",
        "body": "",
        "allocation": CLICKS,
        "caring": present.caring_percent(DEFAULT_CARING),
        "reward": CLICK,
        "denominator": SERVED,
        "starts_at": "",
    }
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        # A choice left out (an older form, a script) is shown as the default it means.
        values = {
            field: request.form.get(field, default if field in CHOSEN else "")
            for field, default in values.items()
        }
        # Which button: start testing now (the default), save as a draft, or schedule.
        then = request.form.get("then", "start")
        if then not in NEW_STATUSES:
            abort(
                400, description="Nothing was created: start it, save it as a draft or schedule it."
            )
        starts_at = None
        if then == "schedule":
            starts_at = lifecycle.parse_start(values["starts_at"])
            if starts_at is None:
                errors["starts_at"] = "give the start time as a date and a time (UTC)"
        headlines = [line.strip() for line in values["headlines"].splitlines() if line.strip()]
        data = {
            "slug": values["slug"].strip().lower(),
            "title": values["title"],
            "headlines": headlines,
            "body": values["body"],
        }
        definition = allocation = caring = reward = denominator = None
        try:
            definition = Definition.from_mapping(data)
        except InvalidExperiment as invalid:
            errors |= invalid.errors
        try:
            allocation, caring = _settings_from_form()
        except InvalidExperiment as invalid:
            errors |= invalid.errors
        try:
            reward, denominator = _measures_from_form()
        except InvalidExperiment as invalid:
            errors |= invalid.errors
        if not errors:
            try:
                created = _service().create(
                    definition,
                    allocation=allocation,
                    caring=caring,
                    status=NEW_STATUSES[then],
                    starts_at=starts_at,
                    editor=g.editor,
                    reward=reward,
                    denominator=denominator,
                )
            except InvalidExperiment as invalid:  # a start time that has passed
                errors |= invalid.errors
                created = None
            if created is False:
                errors["slug"] = f"“{definition.slug}” is taken by another experiment"
            elif created:
                current_app.logger.info("editor %s created %s", g.editor, definition.slug)
                flash(_created_words(definition, then, starts_at), "success")
                return redirect(url_for("dashboard.experiment", slug=definition.slug), code=303)
        # A choice none of the form's radio buttons offers came from no form of
        # ours (a forged or broken request): 400.  A typed field that doesn't
        # fit is the editor's to fix: 422.
        status = 400 if CHOSEN & errors.keys() else 422
    return (
        render_template(
            "dashboard_new.html",
            values=values,
            errors=errors,
            choices=present.ALLOCATION_CHOICES,
            measure_choices=present.measure_choices(_service().quality_seconds),
            now_utc=present.utc(_service().clock()),
        ),
        status,
    )


#: The new-experiment form's buttons and the status each creates.
NEW_STATUSES = {"start": RUNNING, "draft": DRAFT, "schedule": SCHEDULED}
#: The new-experiment form's radio groups, whose values an editor picks but never types.
CHOSEN = frozenset({"allocation", "reward", "denominator"})


def _created_words(definition: Definition, then: str, starts_at: float | None) -> str:
    made = f"Created with {len(definition.headlines)} headlines."
    if then == "draft":
        return (
            f"{made} Saved as a draft: readers can't see it until you start or schedule it. "
            "Preview each headline below."
        )
    if then == "schedule":
        return f"{made} Scheduled: it goes live by itself at {present.utc(starts_at)}."
    return f"{made} Readers are being tested from now on."


# -- exports -------------------------------------------------------------------------


COUNTS_COLUMNS = (
    "variant",
    "headline",
    "impressions",
    "clicks",
    "ctr",
    "ctr_low",
    "ctr_high",
    "anytime_low",
    "anytime_high",
    "allocation",
    "prob_best",
    "expected_loss_per_1000",
    "served",
    "seen",
    "all_clicks",
    "quality_clicks",
    "reward",
    "denominator",
)
SERIES_COLUMNS = (
    "interval_start_utc",
    "interval_start_unix",
    "interval_seconds",
    "variant",
    "headline",
    "impressions",
    "clicks",
)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M", time.gmtime(_service().clock()))


def _download(body: str, slug: str, what: str, extension: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    filename = f"{slug}-{what}-{_stamp()}.{extension}"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv(slug: str, what: str, header: tuple[str, ...], rows: list[list]) -> Response:
    """A CSV download: the header line, then the rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return _download(out.getvalue(), slug, what, "csv", "text/csv")


def _cell(text: str) -> str:
    """A text cell a spreadsheet won't run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _resolution() -> str | None:
    chosen = request.args.get("resolution")
    if chosen not in (None, "minute", "hour"):
        abort(400, description="resolution must be minute or hour")
    return chosen


@blueprint.get("/<slug>/counts.csv")
def export_counts_csv(slug: str):
    experiment = _experiment_or_404(slug)
    report = _service().report(slug, alpha=_alpha(), experiment=experiment)
    stats = report.stats
    signals = report.signals
    rows = []
    for index, variant in enumerate(stats.variants):
        low, high = variant.ctr_ci or (None, None)
        cs_low, cs_high = stats.sequential.cs[index] if variant.impressions else (None, None)
        rows.append(
            [
                report.variant_ids[index],
                _cell(report.headlines[index]),
                variant.impressions,
                variant.clicks,
                _number(variant.ctr),
                _number(low),
                _number(high),
                _number(cs_low),
                _number(cs_high),
                _number(variant.allocation),
                _number(variant.prob_best),
                _number(1000 * variant.expected_loss),
                *(
                    (signals.served[index], signals.seen[index])
                    + (signals.clicks[index], signals.quality[index])
                    + (signals.reward, signals.denominator)
                    if signals is not None
                    else ("",) * 6
                ),
            ]
        )
    return _csv(slug, "counts", COUNTS_COLUMNS, rows)


def _number(value) -> str:
    return "" if value is None else repr(float(value))


@blueprint.get("/<slug>/series.csv")
def export_series_csv(slug: str):
    experiment = _experiment_or_404(slug)
    series = _service().series(slug, resolution=_resolution())
    rows = []
    for point in series["points"]:
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(point["t"]))
        for index, variant in enumerate(series["variants"]):
            rows.append(
                [
                    start,
                    point["t"],
                    series["interval_seconds"],
                    variant,
                    _cell(experiment.definition.headline(variant)),
                    point["impressions"][index],
                    point["clicks"][index],
                ]
            )
    return _csv(slug, f"series-{series['resolution']}", SERIES_COLUMNS, rows)


@blueprint.get("/<slug>/export.json")
def export_json(slug: str):
    service = _service()
    experiment = _experiment_or_404(slug)
    document = {
        "exported_at": present.iso(service.clock()),
        "stats": service.report(slug, alpha=_alpha(), experiment=experiment).to_json(),
        "series": service.series(slug, resolution=_resolution()),
        "audit": service.audit(slug),
    }
    body = json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False)
    return _download(body + "\n", slug, "export", "json", "application/json")


# The publishing views (edit, preview, start, schedule, archive, the front page's
# order) register their routes on this blueprint; the experiment page uses their words.
from . import lifecycle  # noqa: E402
