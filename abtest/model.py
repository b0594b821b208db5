"""Domain values: experiments, their variants and counts, and the story parser.

Small frozen dataclasses, no I/O.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping, Sequence
from importlib import resources

__all__ = [
    "ALLOCATIONS",
    "CLICKS",
    "REWARDS",
    "CLICK",
    "QUALITY",
    "DENOMINATORS",
    "SERVED",
    "SEEN",
    "DEFAULT_CARING",
    "RESERVED_SLUGS",
    "STATUSES",
    "DRAFT",
    "SCHEDULED",
    "RUNNING",
    "PAUSED",
    "DECIDED",
    "PUBLISHED",
    "VARIANT_IDS",
    "Definition",
    "Experiment",
    "InvalidExperiment",
    "check_settings",
    "check_measures",
    "refusal",
    "ACTIONS",
    "parse_story",
    "seed_definition",
]

#: An experiment's life: a draft (readers can't reach it), scheduled (goes
#: live by itself at its start time), running (readers are tested), paused
#: (every reader gets ``a``, nothing counted) or decided (every reader gets
#: the winner).  Paused and decided ones can also be archived (see
#: :func:`refusal` for what applies when).
DRAFT, SCHEDULED = "draft", "scheduled"
RUNNING, PAUSED, DECIDED = "running", "paused", "decided"
STATUSES = (DRAFT, SCHEDULED, RUNNING, PAUSED, DECIDED)
#: The statuses whose story readers can reach at its address; the front page
#: shows them too, unless archived.  Drafts and scheduled stories are 404s.
PUBLISHED = frozenset({RUNNING, PAUSED, DECIDED})
#: Allocation modes (abtest.bandit.MODES): maximize clicks (Thompson sampling)
#: or find the winner (top-two Thompson sampling).
CLICKS, WINNER = "clicks", "winner"
ALLOCATIONS = (CLICKS, WINNER)
#: What the statistics count as a reader's response (the reward): every
#: counted click, or only quality clicks (a click followed by enough engaged
#: reading on the story page).
CLICK, QUALITY = "click", "quality"
REWARDS = (CLICK, QUALITY)
#: What the statistics count as an impression (the denominator): every reader
#: served the headline, or only those who saw it (half the slot in view for a
#: second).
SERVED, SEEN = "served", "seen"
DENOMINATORS = (SERVED, SEEN)
#: The default threshold of caring, a share of the leader's CTR: the value of
#: abtest.decision.DEFAULT_RELATIVE_THRESHOLD, kept here so that the reader
#: path never imports scipy (a test holds the two equal).
DEFAULT_CARING = 0.02
#: Variant ids, in the order the headlines are given: at most 26.
VARIANT_IDS = tuple(string.ascii_lowercase)
MIN_VARIANTS, MAX_VARIANTS = 2, len(VARIANT_IDS)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
#: Slugs that would collide with dashboard addresses (/dashboard/new, ...).
RESERVED_SLUGS = frozenset(
    {"new", "login", "logout", "api", "static", "archived", "front-page", "data-loss"}
)
MAX_HEADLINE = 300
MAX_BODY = 100_000

SEED_SLUG = "colombia-china"
# Page furniture in the scraped seed page (see SPEC, "The job").
_HEADLINE_FURNITURE = "Video Poster"
_BODY_END = "Leave a Reply"


class InvalidExperiment(ValueError):
    """An experiment definition breaks a rule; ``errors`` maps field to message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.errors.items()))


@dataclasses.dataclass(frozen=True)
class Definition:
    """What an editor wrote: the story and its candidate headlines."""

    slug: str
    title: str
    headlines: tuple[str, ...]
    body: tuple[str, ...]
    #: ``a``, ``b``, ... one per headline (worked out once: readers' requests ask often).
    variant_ids: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # The generated hash, computed once: reader pages are cached by definition.
        return self._hash

    def __reduce__(self):
        # Rebuilt from its fields when unpickled: another process hashes strings
        # differently, so the stored hash must not travel.
        return (type(self), (self.slug, self.title, self.headlines, self.body))

    def __post_init__(self) -> None:
        errors = {}
        if not isinstance(self.slug, str) or not SLUG_RE.match(self.slug):
            errors["slug"] = (
                "use 1 to 64 lowercase letters, digits and inner hyphens, e.g. colombia-china"
            )
        elif self.slug in RESERVED_SLUGS:
            errors["slug"] = f"“{self.slug}” is a dashboard address; choose another slug"
        if not isinstance(self.title, str) or not self.title.strip():
            errors["title"] = "give the story a title"
        elif len(self.title) > MAX_HEADLINE:
            errors["title"] = f"keep the title under {MAX_HEADLINE} characters"
        headlines = [h.strip() for h in self.headlines if isinstance(h, str) and h.strip()]
        if len(headlines) != len(self.headlines):
            errors["headlines"] = "every headline must be non-empty text"
        elif not MIN_VARIANTS <= len(headlines) <= MAX_VARIANTS:
            errors["headlines"] = (
                f"give {MIN_VARIANTS} to {MAX_VARIANTS} headlines, not {len(headlines)}"
            )
        elif len(set(headlines)) != len(headlines):
            errors["headlines"] = "headlines must differ from each other"
        elif any(len(h) > MAX_HEADLINE for h in headlines):
            errors["headlines"] = f"keep each headline under {MAX_HEADLINE} characters"
        texts = [self.title, *self.headlines, *self.body]
        if any(isinstance(t, str) and _CONTROL.search(t) for t in texts):
            errors.setdefault("body", "remove control characters from the text")
        paragraphs = [p for p in self.body if isinstance(p, str) and p.strip()]
        if not paragraphs:
            errors["body"] = "the story needs at least one paragraph"
        elif sum(len(p) for p in paragraphs) > MAX_BODY:
            errors["body"] = f"keep the story under {MAX_BODY} characters"
        if errors:
            raise InvalidExperiment(errors)
        object.__setattr__(self, "headlines", tuple(headlines))
        object.__setattr__(self, "body", tuple(p.strip() for p in paragraphs))
        object.__setattr__(self, "variant_ids", VARIANT_IDS[: len(self.headlines)])
        object.__setattr__(self, "_hash", hash((self.slug, self.title, self.headlines, self.body)))

    def headline(self, variant: str) -> str:
        return self.headlines[self.variant_ids.index(variant)]

    def to_json(self) -> dict:
        return {"title": self.title, "headlines": list(self.headlines), "body": list(self.body)}

    @classmethod
    def from_json(cls, slug: str, data: Mapping) -> Definition:
        return cls(
            slug=slug,
            title=data["title"],
            headlines=tuple(data["headlines"]),
            body=tuple(data["body"]),
        )

    @classmethod
    def from_mapping(cls, data: Mapping) -> Definition:
        """Build from user input (a form, TOML or JSON), collecting every error."""
        errors = {}
        for field in ("slug", "title", "headlines", "body"):
            if field not in data:
                errors[field] = "missing"
        if errors:
            raise InvalidExperiment(errors)
        headlines = data["headlines"]
        if isinstance(headlines, str):
            headlines = headlines.splitlines()
        body = data["body"]
        if isinstance(body, str):
            body = split_paragraphs(body)
        if not isinstance(headlines, Sequence) or not isinstance(body, Sequence):
            raise InvalidExperiment({"headlines": "give a list of headlines"})
        return cls(
            slug=str(data["slug"]).strip(),
            title=str(data["title"]).strip(),
            headlines=tuple(h.strip() if isinstance(h, str) else h for h in headlines if h != ""),
            body=tuple(body),
        )


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A definition with its state and counts, as one worker last read them."""

    definition: Definition
    status: str
    winner: str | None
    #: Per variant, the impressions and clicks the statistics use: the
    #: :attr:`denominator` and the :attr:`reward` the editor chose.
    impressions: tuple[int, ...]
    clicks: tuple[int, ...]
    created_at: float = 0.0
    #: How new readers are allocated: :data:`CLICKS` or :data:`WINNER`.
    allocation: str = CLICKS
    #: The threshold of caring: safe to stop once choosing the leader now
    #: costs less than this share of its clicks (0 < caring < 1).
    caring: float = DEFAULT_CARING
    #: When a scheduled experiment goes live (Unix seconds); None unless scheduled.
    starts_at: float | None = None
    #: When it was archived (Unix seconds); None unless archived.
    archived_at: float | None = None
    #: Its place on the front page: higher first.  The moment it went live
    #: (its creation time if it was created running) unless an editor moved it.
    rank: float | None = None
    #: What :attr:`clicks` counts: :data:`CLICK` or :data:`QUALITY`.
    reward: str = CLICK
    #: What :attr:`impressions` counts: :data:`SERVED` or :data:`SEEN`.
    denominator: str = SERVED
    #: Per variant, every count kept, whichever the statistics use: readers
    #: served, readers who saw the headline, clicks, quality clicks (empty:
    #: the same as :attr:`impressions` and :attr:`clicks`, none seen or quality).
    served: tuple[int, ...] = ()
    seen: tuple[int, ...] = ()
    all_clicks: tuple[int, ...] = ()
    quality_clicks: tuple[int, ...] = ()

    @property
    def slug(self) -> str:
        return self.definition.slug

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def published(self) -> bool:
        """Whether readers can reach the story at its address."""
        return self.status in PUBLISHED

    @property
    def on_front_page(self) -> bool:
        return self.status in PUBLISHED and self.archived_at is None

    @property
    def order(self) -> float:
        """The front page's sort key, higher first."""
        return self.created_at if self.rank is None else self.rank

    @property
    def counted(self) -> int:
        """Readers served and counted so far: once there are any, the text is fixed."""
        return sum(self.served or self.impressions)

    @property
    def variant_ids(self) -> tuple[str, ...]:
        return self.definition.variant_ids

    @property
    def default_variant(self) -> str:
        """Who gets what when nobody is being assigned: the winner once decided, else ``a``."""
        if self.status == DECIDED and self.winner:
            return self.winner
        return self.variant_ids[0]


#: What each editor action needs, as (statuses it applies to, refusal otherwise).
#: Archived experiments refuse everything but ``unarchive``; ``edit`` also
#: needs no impression counted yet.
_RULES: dict[str, tuple[frozenset[str], str]] = {
    "start": (
        frozenset({DRAFT, SCHEDULED}),
        "only a draft or a scheduled test can be started; this one is {status}",
    ),
    "schedule": (
        frozenset({DRAFT, SCHEDULED}),
        "only a draft can be scheduled; this test is {status} already",
    ),
    "unschedule": (frozenset({SCHEDULED}), "only a scheduled test can be unscheduled"),
    "pause": (frozenset({RUNNING}), "only a running test can be paused"),
    "resume": (frozenset({PAUSED}), "only a paused test can be resumed"),
    "decide": (frozenset({RUNNING, PAUSED}), "{decide}"),
    "reopen": (frozenset({DECIDED}), "only a decided test can be reopened"),
    "archive": (
        frozenset({DECIDED, PAUSED}),
        "only a decided or paused test can be archived: choose a winner or pause it first",
    ),
    "unarchive": (frozenset(STATUSES), "the test is not archived"),
    "edit": (
        frozenset({DRAFT, SCHEDULED, RUNNING, PAUSED}),
        "a winner is chosen, so the text can't change; reopen the test first",
    ),
    "move": (
        PUBLISHED,
        "only a story on the front page can be moved; this one is {status}",
    ),
}
#: The actions :func:`refusal` knows.
ACTIONS = tuple(_RULES)


def refusal(experiment: Experiment, action: str) -> str | None:
    """Why ``action`` does not apply to ``experiment`` as it is, or None if it does.

    The words end without a full stop: callers put them in a sentence.
    """
    statuses, message = _RULES[action]
    if action == "unarchive":
        return None if experiment.archived else message
    if experiment.archived:
        return "the test is archived; unarchive it first"
    if experiment.status not in statuses:
        decide = (
            "a winner is chosen already; reopen the test first"
            if experiment.status == DECIDED
            else "nobody has seen this test yet; start it first"
        )
        return message.format(status=experiment.status, decide=decide)
    if action == "edit" and experiment.counted:
        shown = experiment.counted
        return (
            f"readers have seen this test ({shown:,} impression{'s' if shown != 1 else ''} "
            "counted), so its text can't change: the counts would mix two texts. "
            "Create a new experiment instead"
        )
    return None


def check_settings(
    allocation: object = CLICKS, caring: object = DEFAULT_CARING
) -> tuple[str, float]:
    """An experiment's allocation mode and threshold of caring from user input
    (a form, TOML or JSON), as ``(allocation, caring)``.

    Raises :class:`InvalidExperiment` naming each bad field (``allocation``,
    ``caring``).
    """
    errors = {}
    if allocation not in ALLOCATIONS:
        errors["allocation"] = f"choose {' or '.join(ALLOCATIONS)}, not {allocation!r}"
    value = None
    if isinstance(caring, int | float) and not isinstance(caring, bool):
        value = float(caring)
    elif isinstance(caring, str):
        try:
            value = float(caring.strip())
        except ValueError:
            value = None
    if value is None or not 0.0 < value < 1.0:  # NaN fails the comparison too
        errors["caring"] = (
            f"the threshold of caring is a share of the leader's CTR strictly between 0 and 1 "
            f"(e.g. {DEFAULT_CARING}), not {caring!r}"
        )
    if errors:
        raise InvalidExperiment(errors)
    return str(allocation), value


def check_measures(reward: object = CLICK, denominator: object = SERVED) -> tuple[str, str]:
    """An experiment's reward and denominator from user input, as ``(reward, denominator)``.

    Raises :class:`InvalidExperiment` naming each bad field (``reward``,
    ``denominator``).
    """
    errors = {}
    if reward not in REWARDS:
        errors["reward"] = f"choose {' or '.join(REWARDS)}, not {reward!r}"
    if denominator not in DENOMINATORS:
        errors["denominator"] = f"choose {' or '.join(DENOMINATORS)}, not {denominator!r}"
    if errors:
        raise InvalidExperiment(errors)
    return str(reward), str(denominator)


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; single newlines join into one."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [
        " ".join(line.strip() for line in block.splitlines()).strip()
        for block in blocks
        if block.strip()
    ]


def parse_story(text: str, headline_count: int = 3) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a scraped story page into its headlines and body paragraphs.

    The first ``headline_count`` non-empty lines are the headlines, without the
    trailing "Video Poster" furniture; the body is every paragraph after them
    up to (not including) "Leave a Reply".
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= headline_count:
        raise InvalidExperiment({"body": "the story has no paragraphs after its headlines"})
    headlines = []
    for line in lines[:headline_count]:
        if line.endswith(_HEADLINE_FURNITURE):
            line = line[: -len(_HEADLINE_FURNITURE)].rstrip()
        headlines.append(line)
    body = []
    for line in lines[headline_count:]:
        if line == _BODY_END:
            break
        body.append(line)
    return tuple(headlines), tuple(body)


def seed_definition() -> Definition:
    """The story that ships with the product (``abtest/data/colombia-china.txt``)."""
    text = resources.files("abtest").joinpath("data", f"{SEED_SLUG}.txt").read_text("utf-8")
    headlines, body = parse_story(text)
    return Definition(slug=SEED_SLUG, title=headlines[0], headlines=headlines, body=body)
