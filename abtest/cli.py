"""The ``abtest`` command: serve, stats, experiments, editors, api-token, simulate,
hash-password.

The imports up here stay light: `abtest --help`, `abtest editors` and
`abtest experiments list` answer at once because numpy, scipy, flask and
the WSGI servers (granian, gunicorn) are imported only inside the commands
that need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .config import ConfigError, Settings
from .model import ALLOCATIONS, CLICK, DECIDED, DEFAULT_CARING, DENOMINATORS, REWARDS, SERVED

if TYPE_CHECKING:
    from .model import Experiment
    from .report import ExperimentReport
    from .service import Service

__all__ = ["main"]


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


class _WholeSentence:
    """A command list shows each command's first sentence whole.

    click cuts it to fit one line of the terminal ("Create, list and
    change experiments; pause, resume,..."); wrapped, nothing is lost.
    """

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=10_000)


class _Command(_WholeSentence, click.Command):
    pass


class _Group(_WholeSentence, click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Groups too


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="abtest")
def main() -> None:
    """Headline A/B testing for newsrooms.

    Start with `abtest serve`, then open http://127.0.0.1:8000/ (the
    dashboard is at /dashboard/: add yourself first with `abtest editors
    add NAME`).  Every command reads its settings from the environment
    (REDIS_URL, ABTEST_DATA_DIR, ...: see the README).
    """


# -- serve ----------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--workers",
    default=max(2, os.cpu_count() or 1),
    show_default="number of cores, at least 2",
    type=click.IntRange(1, 256),
    help="Worker processes.",
)
@click.option(
    "--threads",
    default=8,  # abtest.server.DEFAULT_THREADS, named there with the reason
    show_default=True,
    type=click.IntRange(1, 256),
    help=(
        "Requests each worker serves at once (granian's blocking threads, gunicorn's "
        "gthread threads; 1: one slow Redis call holds up every request behind it)."
    ),
)
@click.option(
    "--server",
    default="granian",  # abtest.server.DEFAULT_SERVER
    show_default=True,
    type=click.Choice(["granian", "gunicorn"]),  # abtest.server.SERVERS
    help="The WSGI server to run the service under.",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One log line per request on stdout (also ABTEST_ACCESS_LOG). [default: off]",
)
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    default=None,
    help="Redis to use (also REDIS_URL). Unset: start the embedded Redis server.",
)
@click.option(
    "--data-dir",
    envvar="ABTEST_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Embedded Redis data and development secrets (also ABTEST_DATA_DIR).",
)
def serve(host, port, workers, threads, server, access_log, redis_url, data_dir) -> None:
    """Run the service under granian or gunicorn (with an embedded Redis if none is configured).

    The embedded Redis is restarted if it dies (its append-only file keeps
    the counts), and stops with the service, even one killed with SIGKILL.
    """
    settings = _settings(redis_url=redis_url, data_dir=data_dir, access_log=access_log)
    try:
        settings = settings.with_dev_secrets()
        settings.validate()
        # Before the app is built and the workers fork: /metrics sums them all.
        from .metrics import prepare_multiprocess

        prepare_multiprocess(settings.data_dir)
    except (ConfigError, OSError) as error:
        raise click.ClickException(str(error)) from None
    # Before anything starts (the embedded Redis, the app, the workers) and
    # before "serving on" is said: granian binds with SO_REUSEPORT and could
    # share a port another such server holds, and gunicorn would say
    # "Connection in use" five times over several seconds.
    check_listen(host, port)
    from .embedded import EmbeddedRedis, EmbeddedRedisError

    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        try:
            embedded.start()
        except EmbeddedRedisError as error:
            raise click.ClickException(str(error)) from None
        embedded.supervise()
        settings = dataclasses.replace(settings, redis_url=embedded.url)
        click.echo(f"abtest: embedded Redis at {embedded.socket}, data in {settings.data_dir}")
    try:
        from .dashboard.auth import Editors
        from .server import ServeError, run

        click.echo(
            f"abtest: serving on http://{host}:{port}/ with {workers} worker(s) "
            f"of {threads} thread(s)"
        )
        if not settings.production and settings.api_token:
            click.echo(f"abtest: stats API token (development): {settings.api_token}")
        if not Editors(settings).configured:
            click.echo(f"abtest: {NO_EDITOR}", err=True)
        try:
            run(settings, host=host, port=port, workers=workers, threads=threads, server=server)
        except ServeError as error:
            raise click.ClickException(str(error)) from None
    finally:
        if embedded is not None:
            embedded.stop()


#: What ``abtest serve`` says when nobody can sign in to the dashboard.
NO_EDITOR = (
    "no editor can sign in to the dashboard yet: add one with `abtest editors add NAME` "
    "(no restart needed)"
)


def check_listen(host: str, port: int) -> None:
    """Refuse at once, in one sentence, an address that can't be listened on."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise click.ClickException(
            f"can't listen on {host!r} ({error.strerror}): choose another --host"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # As the servers bind (SO_REUSEADDR): a port whose last connections are
        # in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                reason = f"port {port} on {host} is in use by another program"
                remedy = "stop it, or choose another port with --port"
            elif error.errno == errno.EACCES:
                reason = f"this user may not listen on port {port}"
                remedy = "choose a port from 1024 up with --port"
            elif error.errno == errno.EADDRNOTAVAIL:
                reason = f"{host} is not an address of this machine"
                remedy = "choose another with --host (0.0.0.0: every address)"
            else:
                reason = f"can't listen on {host}:{port} ({error.strerror})"
                remedy = "choose another --host or --port"
            raise click.ClickException(f"{reason}: {remedy}") from None


# -- commands that talk to Redis ------------------------------------------


@contextlib.contextmanager
def _service() -> Iterator[Service]:
    """A service on REDIS_URL, on the running embedded server, or on one started for it."""
    from .embedded import EmbeddedRedis, EmbeddedRedisError
    from .service import Service, UnknownExperiment
    from .store import StoreError, connect

    try:
        settings = _settings().with_dev_secrets()
    except OSError as error:
        raise click.ClickException(str(error)) from None
    with contextlib.ExitStack() as stack:
        url = settings.redis_url
        if not url:
            embedded = EmbeddedRedis(settings.data_dir)
            if not embedded.running_elsewhere():
                try:
                    stack.enter_context(embedded)
                except EmbeddedRedisError as error:
                    raise click.ClickException(str(error)) from None
            url = embedded.url
        try:
            connection = connect(url, timeout=5)
        except (StoreError, ValueError) as error:  # a cluster away; a REDIS_URL of no known form
            raise click.ClickException(str(error)) from None
        stack.callback(connection.close)
        service = Service.from_settings(settings, connection)
        stack.callback(service.stop)  # its background refresher ends before the connection
        try:
            if settings.load_seed:
                service.ensure_seed()
            yield service
        except StoreError as error:
            raise click.ClickException(f"Redis at {url} can't be reached: {error}") from None
        except UnknownExperiment as unknown:
            raise click.ClickException(f"no experiment {unknown.args[0]!r}") from None


@main.command()
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print the stats document as JSON.")
@click.option(
    "--alpha",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
def stats(slug: str, as_json: bool, alpha: float) -> None:
    """Show an experiment's results: the verdict, CTRs with intervals, P(best), the tests."""
    from . import chartdata

    with _service() as service:
        report = service.report(slug, alpha=alpha)
        timeline = chartdata.build_timeline(
            service.series(slug),
            created_at=report.created_at,
            now=service.clock(),
            counting=report.status != DECIDED,
        )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, allow_nan=False, ensure_ascii=False))
        return
    click.echo(render_report(report, timeline.readers_per_second()))


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of cells as aligned lines: the first column left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def render_report(report: ExperimentReport, readers_per_second: float | None = None) -> str:
    """The stats report as a terminal table, with the verdict in words first."""
    from . import verdicts

    stats = report.stats
    said = verdicts.verdict(report, readers_per_second)
    winner = f", winner {report.winner.upper()}" if report.winner else ""
    lines = [f"{report.slug}  ({report.status}{winner})", ""]
    lines.append(f"Verdict: {said.claim}")
    if said.advice:
        lines.append(f"         {said.advice}")
    if report.signals is not None:
        from .dashboard import present

        signals = report.signals
        lines.append(
            f"Counting {present.measures_text(signals.reward, signals.denominator)} "
            f"(reward={signals.reward}, denominator={signals.denominator})."
        )
    lines.append("")
    header = ("", "impressions", "clicks", "CTR", "anytime interval", "P(best)", "exp. loss/1k")
    rows = [header]
    for index, variant in enumerate(stats.variants):
        low, high = stats.sequential.cs[index] if variant.impressions else (None, None)
        rows.append(
            (
                report.label(index),
                f"{variant.impressions:,}",
                f"{variant.clicks:,}",
                _pct(variant.ctr),
                f"{_pct(low)} – {_pct(high)}",
                f"{variant.prob_best:.3f}",
                f"{1000 * variant.expected_loss:.2f}",
            )
        )
    lines += _columns(rows)
    lines.append(
        f"(anytime intervals: valid however often you look, {stats.level}% for all together)"
    )
    lines.append("")
    if report.signals is not None:
        lines += _signal_lines(report)
        lines.append("")
    for index, headline in enumerate(report.headlines):
        lines.append(f"  {report.label(index)}: {headline}")
    lines.append("")
    sequential = stats.sequential
    lines.append(
        f"Anytime-valid evidence (proven at {sequential.threshold:g} or more, valid at every look):"
    )
    for pair in sequential.pairs:
        a, b = report.label(pair.a), report.label(pair.b)
        lines.append(f"  {a} better than {b}: {pair.a_beats_b:.3g}")
        lines.append(f"  {b} better than {a}: {pair.b_beats_a:.3g}")
    lines.append("")
    lines.append("Fixed-sample tests, for reference (valid at one planned look only):")
    chi = stats.chi_square
    if chi.statistic is not None:
        lines.append(
            f"  Chi-square: X² = {chi.statistic:.3f}, df = {chi.dof}, "
            f"p = {verdicts.format_p(chi.p_value)}"
        )
    lines.append("    " + verdicts.chi_square(report))
    lines.append("  Pairwise (two-proportion z-tests, Holm-adjusted):")
    for test in stats.pairwise:
        lines.append("    " + verdicts.pairwise(report, test))
    return "\n".join(lines)


def _signal_lines(report: ExperimentReport) -> list[str]:
    """Every count kept per headline (readers served and who saw it, clicks and
    quality clicks), both rates, and the seen check's warnings."""
    from .dashboard import present

    signals = report.signals
    unit = present.DENOMINATOR_WORDS[signals.denominator]
    lines = [f"Every count (rates {unit}):"]
    rows = [("", "served", "seen", "seen share", "clicks", "quality clicks")]
    rows[0] += ("click rate", "quality rate")
    for index in range(len(report.variant_ids)):
        rows.append(
            (
                report.label(index),
                f"{signals.served[index]:,}",
                f"{signals.seen[index]:,}",
                present.share(signals.seen_share(index)),
                f"{signals.clicks[index]:,}",
                f"{signals.quality[index]:,}",
                _pct(signals.rate(index, quality=False)),
                _pct(signals.rate(index, quality=True)),
            )
        )
    lines += _columns(rows)
    seen = present.seen_view(report)
    command = f"abtest experiments settings {report.slug} --denominator"
    for flag in seen["flagged"]:
        text = flag["text"]
        if signals.denominator == "served":
            text = f"{text.removesuffix('.')} ({command} seen)."
        lines += _wrap(f"Warning: {text}")
    if seen["unmeasured"]:
        lines += _wrap(
            "Warning: seen impressions are not being measured: they need pages with the "
            "snippet (/abtest.js) or abtest's own pages. Until enough are reported, only "
            "the readers who clicked count as having seen a headline, so the rates per "
            f"reader who saw it mean nothing yet ({command} served)."
        )
    elif not seen["measured"]:
        lines += _wrap(
            "(seen impressions are not measured on this story yet: pages with the snippet, "
            "/abtest.js, or abtest's own pages report them)"
        )
    return lines


def _wrap(paragraph: str) -> list[str]:
    """A paragraph in lines of at most 100 characters, the later ones indented."""
    import textwrap

    return textwrap.wrap(paragraph, width=100, subsequent_indent="  ", break_on_hyphens=False)


# -- experiments ----------------------------------------------------------


@main.group()
def experiments() -> None:
    """Create, list, edit and schedule experiments; pause, decide, archive and order them."""


@experiments.command("list")
def list_experiments() -> None:
    """A table of every experiment: its status, counts, settings, what its statistics count
    and its winner's headline."""
    with _service() as service:
        found = service.fresh_all()
    if not found:
        click.echo("no experiments: create one with `abtest experiments create FILE`")
        return
    click.echo("\n".join(experiments_table(found)))


def experiments_table(found: list[Experiment]) -> list[str]:
    """``abtest experiments list``'s lines: a header, then one row per experiment."""
    header = ("slug", "status", "headlines", "impressions", "clicks", "allocation", "caring")
    rows = [(*header, "reward", "denominator", "winner")]
    for experiment in found:
        winner = ""
        if experiment.winner:
            index = experiment.variant_ids.index(experiment.winner)
            winner = f"{experiment.winner.upper()}: {experiment.definition.headlines[index]}"
        rows.append(
            (
                experiment.slug,
                experiment.status + (", archived" if experiment.archived else ""),
                str(len(experiment.variant_ids)),
                f"{sum(experiment.impressions):,}",
                f"{sum(experiment.clicks):,}",
                experiment.allocation,
                f"{experiment.caring:g}",
                experiment.reward,
                experiment.denominator,
                winner,
            )
        )
    # Words to the left, numbers to the right.
    right = {2, 3, 4, 6}
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _story_file(path: Path) -> dict:
    """A TOML or JSON file's table, or a clear message and exit 1."""
    import tomllib

    try:
        text = path.read_text("utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise click.ClickException(
            f"{path} is not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {error}"
        ) from None
    if not isinstance(data, dict):
        raise click.ClickException(
            f"{path} must hold a table/object with slug, title, headlines, body"
        )
    return data


def _moment(text: str) -> float:
    """A start time given on the command line (ISO 8601; UTC unless it names its offset)."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: write it as 2026-12-02T09:30 (UTC) or with its offset, "
            "2026-12-02T10:30+01:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@experiments.command("create")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--draft", is_flag=True, help="Save it as a draft: readers can't see it yet.")
@click.option(
    "--starts-at",
    "starts_at",
    metavar="WHEN",
    help="Schedule it: it goes live by itself at WHEN (2026-12-02T09:30, UTC).",
)
def create_experiment(path: Path, draft: bool, starts_at: str | None) -> None:
    """Create an experiment from a TOML or JSON file (slug, title, headlines, body).

    Optional keys: ``allocation`` ("clicks" to maximize clicks, the default, or
    "winner" to find the winner sooner at a cost in clicks), ``caring``
    (the threshold of caring, a share of the leader's CTR, default 0.02),
    ``reward`` ("click", the default, or "quality": only clicks followed by
    enough reading) and ``denominator`` ("served", the default, or "seen":
    only readers who saw the headline).  Readers are tested from now on,
    unless it is saved ``--draft`` or scheduled (``--starts-at``).
    """
    from .model import (
        DRAFT,
        RUNNING,
        SCHEDULED,
        Definition,
        InvalidExperiment,
        check_measures,
        check_settings,
    )

    if draft and starts_at:
        raise click.UsageError("--draft and --starts-at exclude each other: a draft has no start")
    data = _story_file(path)
    status = DRAFT if draft else SCHEDULED if starts_at else RUNNING
    moment = _moment(starts_at) if starts_at else None
    errors = {}
    try:
        definition = Definition.from_mapping(data)
    except InvalidExperiment as invalid:
        errors |= invalid.errors
    try:
        allocation, caring = check_settings(
            data.get("allocation", "clicks"), data.get("caring", DEFAULT_CARING)
        )
    except InvalidExperiment as invalid:
        errors |= invalid.errors
    try:
        reward, denominator = check_measures(
            data.get("reward", CLICK), data.get("denominator", SERVED)
        )
    except InvalidExperiment as invalid:
        errors |= invalid.errors
    if errors:
        raise click.ClickException(
            "invalid experiment:\n" + "\n".join(f"  {f}: {m}" for f, m in errors.items())
        ) from None
    with _service() as service:
        try:
            created = service.create(
                definition,
                allocation=allocation,
                caring=caring,
                status=status,
                starts_at=moment,
                editor=_actor(),
                reward=reward,
                denominator=denominator,
            )
        except InvalidExperiment as invalid:
            raise click.ClickException("; ".join(invalid.errors.values())) from None
        if not created:
            raise click.ClickException(f"an experiment {definition.slug!r} exists already")
    made = {DRAFT: " as a draft", SCHEDULED: f", starting {_utc(moment)}"}.get(status, "")
    click.echo(
        f"created {definition.slug}{made} with {len(definition.headlines)} headlines"
        f" (allocation={allocation}, caring={caring:g}, reward={reward},"
        f" denominator={denominator})"
    )


def _utc(timestamp: float | None) -> str:
    import time

    return "" if timestamp is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


@experiments.command("settings")
@click.argument("slug")
@click.option(
    "--allocation",
    type=click.Choice(ALLOCATIONS),
    help="clicks: maximize clicks; winner: find the winner sooner, at a cost in clicks.",
)
@click.option(
    "--caring",
    type=float,
    help="The threshold of caring, a share of the leader's CTR (0 < caring < 1).",
)
@click.option(
    "--reward",
    type=click.Choice(REWARDS),
    help="What the statistics count as a response: click, every click; quality, only "
    "clicks followed by ABTEST_QUALITY_SECONDS of reading on the story page.",
)
@click.option(
    "--denominator",
    type=click.Choice(DENOMINATORS),
    help="What the statistics count as an impression: served, every reader served; seen, "
    "only readers who saw the headline (needs pages with the snippet or abtest's own).",
)
@click.option("--editor", show_default="cli:<os user>", help="The name in the audit log.")
def experiment_settings(
    slug: str,
    allocation: str | None,
    caring: float | None,
    reward: str | None,
    denominator: str | None,
    editor: str | None,
):
    """Change an experiment's allocation mode, threshold of caring, and what its
    statistics count (audited); an option left out keeps its setting.

    Every count is kept whatever is counted, so a change of --reward or
    --denominator re-reads the whole test that way.
    """
    from .model import InvalidExperiment
    from .service import ActionRefused

    editor = editor or _actor()
    with _service() as service:
        experiment = service.fresh(slug)
        try:
            changed = service.set_settings(
                slug,
                experiment.allocation if allocation is None else allocation,
                experiment.caring if caring is None else caring,
                editor,
                reward=reward,
                denominator=denominator,
            )
        except InvalidExperiment as invalid:
            raise click.ClickException(
                "; ".join(f"{f}: {m}" for f, m in invalid.errors.items())
            ) from None
        except ActionRefused as refused:
            raise click.ClickException(f"nothing changed: {refused}") from None
    click.echo(
        f"{slug}: allocation={changed.allocation}, caring={changed.caring:g}, "
        f"reward={changed.reward}, denominator={changed.denominator}"
    )


def _actor() -> str:
    """The audit log's name for whoever runs this command: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"


def _act(slug: str, act: Callable[[Service], Experiment]) -> None:
    """Run an audited action on ``slug`` and say the experiment's new state."""
    from .service import ActionRefused

    with _service() as service:
        try:
            experiment = act(service)
        except ActionRefused as refused:
            raise click.ClickException(f"{slug}: {refused}") from None
    winner = f", winner {experiment.winner.upper()}" if experiment.winner else ""
    starts = f", starts {_utc(experiment.starts_at)}" if experiment.starts_at else ""
    archived = ", archived" if experiment.archived else ""
    click.echo(f"{slug}: {experiment.status}{winner}{starts}{archived}")


@experiments.command("pause")
@click.argument("slug")
def pause_experiment(slug: str) -> None:
    """Pause a running experiment: every reader gets headline A, nothing is counted."""
    _act(slug, lambda service: service.pause(slug, _actor()))


@experiments.command("resume")
@click.argument("slug")
def resume_experiment(slug: str) -> None:
    """Resume a paused experiment: new readers are tested and counted again."""
    _act(slug, lambda service: service.resume(slug, _actor()))


@experiments.command("decide")
@click.argument("slug")
@click.argument("variant")
def decide_experiment(slug: str, variant: str) -> None:
    """Choose VARIANT (a, b, ...) as the winner: every reader gets it, counting stops."""

    def decide(service: Service) -> Experiment:
        experiment = service.fresh(slug)
        chosen = variant.strip().lower()
        if chosen not in experiment.variant_ids:
            raise click.ClickException(
                f"{slug} has no variant {variant!r}: "
                f"choose one of {', '.join(v.upper() for v in experiment.variant_ids)}"
            )
        return service.decide(slug, chosen, _actor())

    _act(slug, decide)


@experiments.command("reopen")
@click.argument("slug")
def reopen_experiment(slug: str) -> None:
    """Reopen a decided experiment: readers are tested again, counting from where it stopped."""
    _act(slug, lambda service: service.reopen(slug, _actor()))


@experiments.command("start")
@click.argument("slug")
def start_experiment(slug: str) -> None:
    """Put a draft or scheduled experiment live now, first on the front page."""
    _act(slug, lambda service: service.start(slug, _actor()))


@experiments.command("schedule")
@click.argument("slug")
@click.argument("when")
def schedule_experiment(slug: str, when: str) -> None:
    """Schedule a draft to go live by itself at WHEN (2026-12-02T09:30, UTC)."""
    from .model import InvalidExperiment

    moment = _moment(when)

    def schedule(service: Service) -> Experiment:
        try:
            return service.schedule(slug, moment, _actor())
        except InvalidExperiment as invalid:
            raise click.ClickException(f"{slug}: " + "; ".join(invalid.errors.values())) from None

    _act(slug, schedule)


@experiments.command("unschedule")
@click.argument("slug")
def unschedule_experiment(slug: str) -> None:
    """Make a scheduled experiment a draft again: it won't go live by itself."""
    _act(slug, lambda service: service.unschedule(slug, _actor()))


@experiments.command("edit")
@click.argument("slug")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def edit_experiment(slug: str, path: Path) -> None:
    """Replace a story's title, headlines and body while nobody has been counted.

    PATH is a TOML or JSON file as for ``create`` (its slug, if any, must be
    SLUG).  Refused once a reader has been counted: the counts would mix two
    texts.
    """
    from .model import Definition, InvalidExperiment

    data = _story_file(path)
    data.setdefault("slug", slug)
    if data["slug"] != slug:
        raise click.ClickException(f"{path} is the story {data['slug']!r}, not {slug!r}")
    try:
        definition = Definition.from_mapping(data)
    except InvalidExperiment as invalid:
        raise click.ClickException(
            "invalid story:\n" + "\n".join(f"  {f}: {m}" for f, m in invalid.errors.items())
        ) from None
    _act(slug, lambda service: service.edit(slug, definition, _actor()))


@experiments.command("archive")
@click.argument("slug")
def archive_experiment(slug: str) -> None:
    """Archive a decided or paused experiment: off the front page; its link still works."""
    _act(slug, lambda service: service.archive(slug, _actor()))


@experiments.command("unarchive")
@click.argument("slug")
def unarchive_experiment(slug: str) -> None:
    """Put an archived experiment back on the front page, where it was."""
    _act(slug, lambda service: service.unarchive(slug, _actor()))


@experiments.command("move")
@click.argument("slug")
@click.argument("position", type=click.IntRange(1))
def move_experiment(slug: str, position: int) -> None:
    """Put a story at POSITION on the front page (1 is the top)."""
    _act(slug, lambda service: service.move(slug, position, _actor()))


@main.command("hash-password")
def hash_password() -> None:
    """Print a password hash for ABTEST_EDITOR_PASSWORD_HASH or the users file.

    The prompts go to stderr, so `export ABTEST_EDITOR_PASSWORD_HASH="$(abtest
    hash-password)"` captures only the hash.
    """
    click.echo(_ask_password_hash("Password"))


# -- editors and tokens ------------------------------------------------------


@main.command("api-token")
@click.option("--path", "show_path", is_flag=True, help="Print the file that holds it instead.")
def api_token(show_path: bool) -> None:
    """Print the stats API's Bearer token, for the data directory in use.

    ABTEST_API_TOKEN when it is set; else, in development, the token
    generated into the data directory (ABTEST_DATA_DIR), so that

    \b
      curl -H "Authorization: Bearer $(abtest api-token)" \\
           http://127.0.0.1:8000/api/v1/experiments/colombia-china/stats

    works wherever the data lives.
    """
    settings = _settings()
    if settings.api_token:
        if show_path:
            raise click.ClickException("the API token comes from ABTEST_API_TOKEN, not a file")
        click.echo(settings.api_token)
        return
    if settings.production:
        raise click.ClickException(
            "no API token: in production set ABTEST_API_TOKEN (none is generated)"
        )
    try:
        settings = settings.with_dev_secrets()
    except OSError as error:
        raise click.ClickException(str(error)) from None
    if not settings.api_token:
        raise click.ClickException(
            "no API token: set ABTEST_API_TOKEN (one is generated into the data directory "
            "only while ABTEST_SECRET_KEY is unset too)"
        )
    click.echo(settings.data_dir / "api_token" if show_path else settings.api_token)


@main.group()
def editors() -> None:
    """Add, remove and list the editors who may sign in to the dashboard.

    They are kept in the users file: ABTEST_USERS_FILE, else `users` in the
    data directory (ABTEST_DATA_DIR).  A running `abtest serve` reads it
    again when it changes: no restart.
    """


def _users_file() -> Path:
    from .users import users_file

    return users_file(_settings())


@editors.command("list")
def list_editors() -> None:
    """The editors' names, and where each comes from."""
    from .users import read

    settings = _settings()
    path = _users_file()
    try:
        names = list(read(path))
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"can't read {path}: {error}") from None
    if settings.editor_user and settings.editor_password_hash:
        names = [n for n in names if n != settings.editor_user]
        click.echo(f"{settings.editor_user}\t(ABTEST_EDITOR_USER)")
    for name in names:
        click.echo(f"{name}\t({path})")
    if not names and not (settings.editor_user and settings.editor_password_hash):
        click.echo(f"no editors yet: add one with `abtest editors add NAME` (into {path})")


@editors.command("add")
@click.argument("name")
@click.option(
    "--password-hash",
    help="A hash from `abtest hash-password`, instead of asking for the password.",
)
def add_editor(name: str, password_hash: str | None) -> None:
    """Add an editor, or give one a new password (asked for twice, not echoed)."""
    from .users import InvalidName, check_name, set_editor

    try:
        check_name(name)
    except InvalidName as invalid:
        raise click.ClickException(str(invalid)) from None
    path = _users_file()
    if password_hash is None:
        password_hash = _ask_password_hash(f"Password for {name}")
    try:
        added = set_editor(path, name, password_hash)
    except ValueError as invalid:
        raise click.ClickException(str(invalid)) from None
    except OSError as error:
        raise click.ClickException(f"can't write {path}: {error}") from None
    settings = _settings()
    done = "added" if added else "changed the password of"
    click.echo(f"{done} editor {name} in {path}; they can sign in now")
    if settings.editor_user == name:
        click.echo(
            f"ABTEST_EDITOR_USER is {name} too, and its ABTEST_EDITOR_PASSWORD_HASH wins",
            err=True,
        )


@editors.command("remove")
@click.argument("name")
def remove_editor(name: str) -> None:
    """Remove an editor: their sessions end at their next request."""
    from .users import remove_editor as remove

    settings = _settings()
    path = _users_file()
    try:
        removed = remove(path, name)
    except OSError as error:
        raise click.ClickException(f"can't write {path}: {error}") from None
    if removed:
        click.echo(f"removed editor {name} from {path}")
    if settings.editor_user == name:
        raise click.ClickException(
            f"{name} is ABTEST_EDITOR_USER: unset it in the service's environment and restart"
        )
    if not removed:
        raise click.ClickException(f"no editor {name!r} in {path}")


def _ask_password_hash(prompt: str) -> str:
    """A werkzeug hash of a password asked for twice on the terminal (prompts on stderr)."""
    from werkzeug.security import generate_password_hash

    password = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 8:
        raise click.ClickException("use at least 8 characters")
    return generate_password_hash(password)


# -- simulate ---------------------------------------------------------------


def _percentages(ctx, param, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        ctrs = tuple(float(part) / 100 for part in value.split(","))
    except ValueError:
        raise click.BadParameter("give CTRs in percent, separated by commas: 1.5,1.7,2.0") from None
    if len(ctrs) < 2 or len(ctrs) > 26 or not all(0 <= c <= 1 for c in ctrs):
        raise click.BadParameter("give 2 to 26 CTRs, each between 0 and 100 (percent)")
    return ctrs


def _seen_shares(ctx, param, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        shares = tuple(float(part) / 100 for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            "give each headline's seen share in percent, separated by commas: 30,30,30"
        ) from None
    if not all(0 < share <= 1 for share in shares):
        raise click.BadParameter("each seen share must be above 0 and at most 100 (percent)")
    return shares


@main.command()
@click.option(
    "--ctr",
    "ctrs",
    callback=_percentages,
    help="True CTRs in percent, among readers who see the headline: 1.5,1.7,2.0.",
)
@click.option(
    "--seen",
    callback=_seen_shares,
    help="Percent of the readers served each headline who see it: 30,30,30 (default 100).",
)
@click.option(
    "--half-life",
    type=click.FloatRange(0, min_open=True),
    help="Hours in which the CTRs halve as the story ages (default: no decay).",
)
@click.option("--upworthy", is_flag=True, help="Replay the bundled Upworthy tests instead.")
@click.option(
    "--tests",
    default=300,
    show_default=True,
    type=click.IntRange(1),
    help="Upworthy tests to replay.",
)
@click.option("--readers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--runs",
    type=click.IntRange(1),
    help="Runs (default 1000; with --upworthy, runs per test, default 1).",
)
@click.option(
    "--look-every",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Readers between looks.",
)
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Readers per second.",
)
@click.option(
    "--max-age",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a posterior serves before it is rebuilt from the counts.",
)
@click.option(
    "--allocation",
    "allocations",
    multiple=True,
    type=click.Choice(["clicks", "winner", "uniform", "ideal"]),
    help="Allocations to run (repeatable; default all four).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0),
    help="Threshold of caring, clicks per 1,000 readers (default: 2% of the leader's CTR).",
)
@click.option(
    "--alpha",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw regret and traffic shares to this PNG (needs matplotlib: pip install abtest[plot]).",
)
def simulate(
    ctrs,
    seen,
    half_life,
    upworthy,
    tests,
    readers,
    runs,
    look_every,
    rate,
    max_age,
    allocations,
    threshold,
    alpha,
    seed,
    as_json,
    plot,
) -> None:
    """Simulate readers against known CTRs: clicks, regret and each stopping rule, per mode."""
    from . import simulate as simulation

    if (ctrs is None) == (not upworthy):
        raise click.UsageError("give either --ctr or --upworthy")
    if plot is not None and upworthy:
        raise click.UsageError("--plot draws a --ctr scenario")
    if readers < look_every and not upworthy:
        raise click.UsageError("--readers must be at least --look-every")
    if upworthy and (seen is not None or half_life is not None):
        raise click.UsageError("--seen and --half-life apply to a --ctr scenario")
    if seen is not None and len(seen) != len(ctrs):
        raise click.UsageError(f"--seen needs one share per headline in --ctr ({len(ctrs)})")
    if half_life is not None and rate * 3600 < 1:
        raise click.UsageError("--half-life needs --rate of at least one reader an hour")
    options = {
        "allocations": allocations or simulation.ALLOCATIONS,
        "look_every": look_every,
        "rate": rate,
        "max_age": max_age,
        "alpha": alpha,
        "threshold": None if threshold is None else threshold / 1000,
        "seed": seed,
    }
    with click.progressbar(length=1000, label="simulating", file=sys.stderr) as bar:
        done = [0.0]

        def advance(share: float) -> None:
            before = round(1000 * done[0])
            done[0] = min(1.0, done[0] + share)
            bar.update(round(1000 * done[0]) - before)

        if upworthy:
            outcome = simulation.replay_upworthy(tests, runs or 1, progress=advance, **options)
        else:
            outcome = simulation.simulate(
                ctrs,
                readers,
                runs or 1000,
                seen=seen,
                half_life=half_life,
                progress=advance,
                **options,
            )
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2, allow_nan=False))
    else:
        click.echo(
            simulation.render_replay(outcome) if upworthy else simulation.render_scenario(outcome)
        )
    if plot is not None:
        try:
            simulation.plot_scenario(outcome, str(plot))
        except ImportError:
            raise click.ClickException(
                "--plot needs matplotlib: pip install 'abtest[plot]'"
            ) from None
        click.echo(f"plot: {plot}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
