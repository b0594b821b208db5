"""The OpenAPI 3.1 document of every HTTP endpoint, served at ``/api/v1/openapi.json``.

docs/api.md is the contract in words; this is the same contract for
programs: each path and method the app answers (reader pages, the JSON API,
health checks, metrics, the editors' dashboard), its cookies, tokens and
parameters, and its responses, errors included.  tests/test_openapi.py
holds it to the app: every route is described here and nothing else is,
and the service's real responses match the schemas.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import Response, current_app

from .. import __version__
from ..model import (
    ALLOCATIONS,
    DEFAULT_CARING,
    DENOMINATORS,
    MAX_VARIANTS,
    MIN_VARIANTS,
    REWARDS,
    SLUG_RE,
    STATUSES,
)
from .shortcuts import COOKIE

__all__ = ["document", "view", "PATH"]

#: Where the document is served, under the API's prefix.
PATH = "/openapi.json"

_JSON = "application/json"
_HTML = "text/html"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict | str = "Error", **extra: Any) -> dict:
    schema = _ref(schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _html(description: str, **extra: Any) -> dict:
    return {"description": description, "content": {_HTML: {"schema": {"type": "string"}}}, **extra}


def _redirect(description: str) -> dict:
    return {
        "description": description,
        "headers": {"Location": {"schema": {"type": "string"}, "description": "Where to go."}},
    }


_NULLABLE_NUMBER = {"type": ["number", "null"]}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_NULLABLE_UNIT = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_INTERVAL = {"type": "array", "items": _UNIT, "minItems": 2, "maxItems": 2}
_VARIANT_ID = {"type": "string", "pattern": "^[a-z]$", "description": "a, b, c, ... in order"}


def _object(properties: dict, required: list[str] | None = None, **extra: Any) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        **extra,
    }


def _schemas() -> dict:
    note = {
        "oneOf": [
            {"type": "null"},
            _object(
                {
                    "code": {
                        "type": "string",
                        "enum": ["no_impressions", "no_clicks", "all_clicked"],
                    },
                    "message": {"type": "string"},
                }
            ),
        ]
    }
    tally = _object({"impressions": _COUNT, "clicks": _COUNT})
    assignment = {
        "experiment": {"type": "string"},
        "variant": _VARIANT_ID,
        "headline": {"type": "string"},
        "click_url": {
            "type": "string",
            "description": "ABTEST_PUBLIC_URL then /c/<token>, else the root-relative "
            "path /c/<token>; /articles/<slug> for a reader served uncounted.  Never "
            "built from the request's Host.",
        },
    }
    return {
        "Error": _object(
            {"error": {"type": "string", "description": "What went wrong, in words."}},
            description="Every JSON refusal and error: the API's, the dashboard's JSON and "
            "/metrics's.",
        ),
        "Assignment": _object(assignment),
        "SlotAssignment": _object(
            {
                **assignment,
                "token": {
                    "type": ["string", "null"],
                    "description": "The assignment's click token (the one in click_url), "
                    "which the page's seen beacon sends back to POST /api/v1/seen; null when "
                    "there is nothing to report: a reader served uncounted (paused, decided, "
                    "bots, prefetches, past the budget, Redis away), or one whose impression "
                    "was seen already (their cookie says so).",
                },
            },
            description="One slot's assignment in the batch answer.",
        ),
        "ExperimentState": _object(
            {
                "experiment": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "winner": {"oneOf": [_VARIANT_ID, {"type": "null"}]},
            },
            description="An action's result: the experiment's new state.",
        ),
        "Live": _object({"status": {"const": "ok"}}),
        "Ready": {
            "oneOf": [
                _object({"status": {"const": "ok"}, "redis": {"const": "ok"}}),
                _object({"status": {"const": "unavailable"}, "reason": {"type": "string"}}),
            ]
        },
        "Note": note,
        "Excluded": _object(
            {"bot": tally, "prefetch": tally, "rate-limited": tally},
            description="Readers of this headline served but not counted, in none of the "
            "statistics.",
        ),
        "Variant": _object(
            {
                "id": _VARIANT_ID,
                "headline": {"type": "string"},
                "impressions": {
                    **_COUNT,
                    "description": "The impressions the statistics count: served or seen, "
                    "as denominator says",
                },
                "clicks": {
                    **_COUNT,
                    "description": "The clicks the statistics count: every click, or "
                    "quality clicks, as reward says",
                },
                "ctr": {**_UNIT, "description": "clicks / impressions (0.0 without impressions)"},
                "ctr_ci": {
                    "oneOf": [_INTERVAL, {"type": "null"}],
                    "description": "Wilson score interval at level 1 - alpha; null without "
                    "impressions",
                },
                "allocation": {**_UNIT, "description": "this variant's share of impressions"},
                "prob_best": {**_UNIT, "description": "P(this CTR is the highest)"},
                "expected_loss": {
                    "type": "number",
                    "minimum": 0,
                    "description": "E[max CTR - this CTR]",
                },
                "note": _ref("Note"),
                "served": {**_COUNT, "description": "Readers served this headline and counted"},
                "seen": {
                    **_COUNT,
                    "description": "Of those, readers who saw it: half the slot in view for "
                    "a second (a seen beacon), or a counted click",
                },
                "seen_share": {
                    **_NULLABLE_UNIT,
                    "description": "seen / served; null without readers served",
                },
                "all_clicks": {**_COUNT, "description": "Every counted click"},
                "quality_clicks": {
                    **_COUNT,
                    "description": "Clicks followed by ABTEST_QUALITY_SECONDS of engaged "
                    "time on the story page",
                },
                "click_rate": {
                    **_NULLABLE_UNIT,
                    "description": "all_clicks per impression in the denominator in use; "
                    "null without impressions",
                },
                "quality_rate": {
                    **_NULLABLE_UNIT,
                    "description": "quality_clicks per impression in the denominator in use; "
                    "null without impressions",
                },
                "excluded": _ref("Excluded"),
                "stratified": {
                    "oneOf": [
                        _object(
                            {
                                "ctr": {
                                    "oneOf": [_UNIT, {"type": "null"}],
                                    "description": "sum over common hours of w_h clicks_h / "
                                    "impressions_h, w_h the hour's share of all variants' "
                                    "impressions; null without a common hour",
                                },
                                "se": {
                                    "oneOf": [{"type": "number", "minimum": 0}, {"type": "null"}],
                                    "description": "sqrt(sum w_h^2 p_h (1 - p_h) / n_h)",
                                },
                                "pooled": {
                                    "oneOf": [_UNIT, {"type": "null"}],
                                    "description": "clicks / impressions over the hours kept",
                                },
                                "periods": {
                                    **_COUNT,
                                    "description": "hours in which every variant was shown",
                                },
                            }
                        ),
                        {"type": "null"},
                    ],
                    "description": "The CTR stratified by hour (docs/decisions.md)",
                },
            }
        ),
        "StatsDocument": _object(
            {
                "experiment": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "winner": {"oneOf": [_VARIANT_ID, {"type": "null"}]},
                "created_at": {"type": "number", "description": "Unix time"},
                "variants": {
                    "type": "array",
                    "items": _ref("Variant"),
                    "minItems": MIN_VARIANTS,
                    "maxItems": MAX_VARIANTS,
                },
                "tests": _object(
                    {
                        "chi_square": _object(
                            {
                                "statistic": _NULLABLE_NUMBER,
                                "dof": _COUNT,
                                "p_value": _NULLABLE_NUMBER,
                                "note": _ref("Note"),
                            },
                            description="Pearson's test of independence, no continuity "
                            "correction: valid at one planned look only",
                        ),
                        "pairwise": {
                            "type": "array",
                            "description": "Every pair a < b (indices): two-sided pooled "
                            "two-proportion z-tests, Holm-adjusted",
                            "items": _object(
                                {
                                    "a": _COUNT,
                                    "b": _COUNT,
                                    "diff": _NULLABLE_NUMBER,
                                    "z": _NULLABLE_NUMBER,
                                    "p_value": _NULLABLE_NUMBER,
                                    "p_holm": _NULLABLE_NUMBER,
                                    "note": _ref("Note"),
                                }
                            ),
                        },
                        "sequential": _object(
                            {
                                "cs": {
                                    "type": "array",
                                    "items": _INTERVAL,
                                    "description": "anytime-valid intervals, all together "
                                    "at level 1 - alpha",
                                },
                                "e_values": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "a": _COUNT,
                                            "b": _COUNT,
                                            "a_beats_b": {"type": "number", "minimum": 0},
                                            "b_beats_a": {"type": "number", "minimum": 0},
                                        }
                                    ),
                                },
                                "threshold": {
                                    "type": "number",
                                    "description": "(K - 1) / alpha: the evidence a proven "
                                    "winner needs against each other variant",
                                },
                                "call": _object(
                                    {
                                        "winner": {"oneOf": [_VARIANT_ID, {"type": "null"}]},
                                        "proven": {"type": "boolean"},
                                    }
                                ),
                            },
                            description="Anytime-valid: valid at every look, under any "
                            "allocation (docs/decisions.md)",
                        ),
                    }
                ),
                "decision": _object(
                    {
                        "leader": {"oneOf": [_VARIANT_ID, {"type": "null"}]},
                        "expected_loss": {"type": "number", "minimum": 0},
                        "loss_if_not_best": _NULLABLE_NUMBER,
                        "safe_to_stop": {"type": "boolean"},
                        "threshold": {"type": "number", "minimum": 0},
                        "readers_to_call": _object(
                            {
                                "proven": {"type": ["integer", "null"]},
                                "safe_to_stop": {"type": ["integer", "null"]},
                                "horizon": _COUNT,
                            },
                            description="More readers until each is likely; null: not "
                            "within the horizon",
                        ),
                    },
                    description="Can I stop now? In clicks per reader (Bayesian).",
                ),
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "notes": {"type": "array", "items": _ref("Note")},
                "simpson": {
                    "type": "boolean",
                    "description": "The stratified and pooled CTRs name different leaders",
                },
                "reward": {
                    "type": "string",
                    "enum": list(REWARDS),
                    "description": "What the statistics count as a response: click (every "
                    "counted click) or quality (quality clicks only)",
                },
                "denominator": {
                    "type": "string",
                    "enum": list(DENOMINATORS),
                    "description": "What the statistics count as an impression: served (every "
                    "reader served) or seen (readers who saw the headline)",
                },
                "seen_check": _object(
                    {
                        "applies": {
                            "type": "boolean",
                            "description": "Seen beacons reported enough seen impressions for "
                            "the seen shares to mean something",
                        },
                        "flagged": {
                            "type": "array",
                            "items": _VARIANT_ID,
                            "description": "Headlines whose seen share differs from the "
                            "others' (a bias in their CTR per reader served, not a result)",
                        },
                        "p_values": {
                            "oneOf": [{"type": "array", "items": _NULLABLE_UNIT}, {"type": "null"}],
                            "description": "Per variant, its seen share against the others' "
                            "pooled (chi-square), Holm-adjusted; null while the check does "
                            "not apply",
                        },
                    },
                    description="Whether a headline's slot was seen by a different share of "
                    "its readers than the others' (docs/api.md#the-stats-document)",
                ),
            },
            description="docs/api.md#the-stats-document, key by key.",
        ),
    }


_SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "description": "The experiment's slug.",
    "schema": {"type": "string", "pattern": SLUG_RE.pattern},
}

#: What every reader request may carry.
_READER_PARAMETERS = [
    {
        "name": COOKIE,
        "in": "cookie",
        "required": False,
        "description": "The visitor cookie (HttpOnly, SameSite=Lax, 30 days): a signed random "
        "id and the headline this visitor was shown in each experiment.  Missing, forged "
        "or malformed: a new visitor.",
        "schema": {"type": "string"},
    },
    {
        "name": "User-Agent",
        "in": "header",
        "required": False,
        "description": "Crawlers and link previewers (including curl, wget and "
        "python-requests) get the default headline, counted as excluded (bot), never as "
        "an impression.",
        "schema": {"type": "string"},
    },
    {
        "name": "Sec-Purpose",
        "in": "header",
        "required": False,
        "description": "prefetch (also Purpose: prefetch, X-Moz: prefetch, X-Purpose: "
        "preview): a browser prefetch, served the default headline, counted as excluded.",
        "schema": {"type": "string"},
    },
]

_SET_COOKIE = {
    "Set-Cookie": {
        "description": f"{COOKIE}, when this request assigned the visitor a headline that "
        "Redis counted.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "private, no-store", "schema": {"type": "string"}},
}

_BEARER = [{"apiToken": []}]
_EDITOR = [{"editorSession": []}]

_CSRF = {
    "csrf_token": {
        "type": "string",
        "description": "The token in the page's form (Flask-WTF); without it: 400, nothing "
        "changed.",
    }
}


def _form(properties: dict, required: list[str] | None = None) -> dict:
    schema = {
        "type": "object",
        "properties": {**properties, **_CSRF},
        "required": ["csrf_token", *(required or [])],
    }
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}},
    }


def _api_action(summary: str, applies: str, body: dict | None = None) -> dict:
    operation = {
        "tags": ["actions"],
        "summary": summary,
        "description": f"Applies to {applies}.  Kept in the experiment's audit log with "
        "`api` as the editor.  Refusals come in the order listed: 403, 401, 404, 400, 409.",
        "security": _BEARER,
        "parameters": [_SLUG],
        "responses": {
            "200": _json("The experiment's new state.", "ExperimentState"),
            "401": _json(
                "The token is missing or wrong, whatever the slug.",
                headers={"WWW-Authenticate": {"schema": {"const": 'Bearer realm="abtest"'}}},
            ),
            "403": _json("No ABTEST_API_TOKEN is configured: actions on the API are off."),
            "404": _json("No experiment has this slug."),
            "409": _json("The action does not apply in the experiment's state."),
        },
    }
    if body is not None:
        operation["requestBody"] = body
        operation["responses"]["400"] = _json(
            'The body is not {"variant": "<id>"} naming one of the experiment\'s variants.'
        )
    return operation


def _page(summary: str, description: str = "", tag: str = "dashboard", **responses) -> dict:
    operation = {"tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if tag == "dashboard":
        operation["security"] = _EDITOR
    operation["responses"] = {
        "200": _html("The page."),
        **(
            {"302": _redirect("Not signed in: to /dashboard/login?next=<this page>.")}
            if tag == "dashboard"
            else {}
        ),
        **responses,
    }
    return operation


def _dashboard_post(summary: str, form: dict, done: str = "", **responses) -> dict:
    return {
        "tags": ["dashboard"],
        "summary": summary,
        "security": _EDITOR,
        "requestBody": form,
        "responses": {
            "303": _redirect(done or "Done (or refused, with a message on the page it leads to)."),
            "400": _html("A missing or expired CSRF token, or a malformed form: nothing changed."),
            **responses,
        },
    }


def _dashboard_json(summary: str, description: str, schema: dict) -> dict:
    return {
        "tags": ["dashboard"],
        "summary": summary,
        "description": description,
        "security": _EDITOR,
        "responses": {
            "200": _json("The data.", schema),
            "401": _json("Not signed in (never a redirect)."),
        },
    }


def _beacon_body(schema: dict) -> dict:
    """A beacon's body: JSON, sent as text/plain by navigator.sendBeacon."""
    return {
        "required": True,
        "content": {"text/plain": {"schema": schema}, _JSON: {"schema": schema}},
    }


_NOT_FOUND_PAGE = _html("No such experiment.")
_SLUG_PAGE_PARAMETERS = [_SLUG]
_VARIANT_QUERY = {
    "name": "variant",
    "in": "query",
    "required": False,
    "description": "The headline to choose (a, b, ...); without it, the leader.",
    "schema": {"type": "string"},
}


def _paths() -> dict:
    fragments = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        # -- readers -------------------------------------------------------------
        "/": {
            "get": {
                "tags": ["readers"],
                "summary": "The front page",
                "description": "A teaser per published, unarchived story: the visitor's "
                "headline (a new visitor is assigned one, counted as an impression), the first "
                "paragraph, and the headline as a link through /c/<token>.",
                "parameters": _READER_PARAMETERS,
                "responses": {"200": _html("The front page.", headers=_SET_COOKIE)},
            }
        },
        "/articles/{slug}": {
            "get": {
                "tags": ["readers"],
                "summary": "A story under the visitor's headline",
                "description": "A visitor without a headline here is assigned one, counted as "
                "an impression.",
                "parameters": [_SLUG, *_READER_PARAMETERS],
                "responses": {
                    "200": _html("The story.", headers=_SET_COOKIE),
                    "404": _html("No published story has this slug."),
                },
            }
        },
        "/c/{token}": {
            "get": {
                "tags": ["readers"],
                "summary": "Follow a headline: count the click, then go to the story",
                "description": "A click counts once per visitor per experiment, only from the "
                "browser whose cookie the token was signed for and only for the headline it "
                "was shown; it also counts the impression as seen, if no beacon did.  An "
                "expired but genuine link still leads to the story, uncounted.",
                "parameters": [
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "description": "A click token (experiment, variant, a hash of the "
                        "visitor id, a time), signed with itsdangerous; it lives "
                        "ABTEST_CLICK_TOKEN_TTL seconds.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "required": False,
                        "description": "Where to go after counting: a path on this site "
                        "(one leading slash, printable ASCII, no backslash; at most 2,048 "
                        "characters), as /abtest.js sends the slot's own link.  Anything "
                        "else (another host, //host, a full URL) is ignored: the story's "
                        "page on abtest instead.",
                        "schema": {"type": "string"},
                    },
                    *_READER_PARAMETERS,
                ],
                "responses": {
                    "303": _redirect(
                        "To `to` when it is a path on this site, else /articles/<slug>; "
                        "counted or not."
                    ),
                    "400": _html("A malformed or forged token."),
                    "403": _html("A token made for another browser or another headline."),
                    "404": _html("The token's experiment does not exist."),
                },
            }
        },
        "/static/{filename}": {
            "get": {
                "tags": ["readers"],
                "summary": "The reader pages' stylesheet",
                "parameters": [_FILENAME],
                "responses": {"200": {"description": "The file."}, "404": _html("No such file.")},
            }
        },
        # -- the JSON API -------------------------------------------------------------
        "/api/v1/experiments/{slug}/assignment": {
            "get": {
                "tags": ["readers"],
                "summary": "A headline for a page that isn't ours",
                "description": "The same choice as the front page, for one experiment, as "
                "JSON; counts an impression like /.  For pages on the same site: the visitor "
                "cookie is first-party, SameSite=Lax.",
                "parameters": [_SLUG, *_READER_PARAMETERS],
                "responses": {
                    "200": _json("The visitor's headline.", "Assignment", headers=_SET_COOKIE),
                    "404": _json("No published experiment has this slug."),
                },
            }
        },
        "/api/v1/assignments": {
            "get": {
                "tags": ["readers"],
                "summary": "Headlines for every tested slot of a page, in one request",
                "description": "What /abtest.js asks for: the visitor's headline in each "
                "experiment, counted like the front page (bots, prefetches and readers past "
                "their budget are served uncounted), in one Redis round trip.  Repeated slugs "
                "count once.  A slug with no published experiment is listed under unknown; "
                "the others are still served.",
                "parameters": [
                    {
                        "name": "slugs",
                        "in": "query",
                        "required": True,
                        "description": "Experiment slugs separated by commas, at most 20 "
                        "different ones.",
                        "schema": {"type": "string"},
                    },
                    *_READER_PARAMETERS,
                ],
                "responses": {
                    "200": _json(
                        "The visitor's headlines, in the order asked for.",
                        _object(
                            {
                                "assignments": {
                                    "type": "array",
                                    "items": _ref("SlotAssignment"),
                                },
                                "unknown": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "Slugs with no published experiment.",
                                },
                            }
                        ),
                        headers=_SET_COOKIE,
                    ),
                    "400": _json("No slugs, more than 20, or one that is not a slug."),
                },
            }
        },
        "/abtest.js": {
            "get": {
                "tags": ["readers"],
                "summary": "The snippet that puts tested headlines in any page's marked slots",
                "description": "The same for every reader, with this service's quality-click "
                "threshold (ABTEST_QUALITY_SECONDS) written in: cacheable for five minutes, "
                "with an ETag.  It also sends the seen and engaged-time beacons.  See "
                "docs/api.md.",
                "responses": {
                    "200": {
                        "description": "The script.",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    },
                    "304": {"description": "Not modified (If-None-Match named its ETag)."},
                },
            }
        },
        "/api/v1/seen": {
            "post": {
                "tags": ["readers"],
                "summary": "The seen beacon: the slots a reader saw",
                "description": "Sent by /abtest.js (navigator.sendBeacon, so as text/plain; "
                "the body is read as JSON whatever its type) with the token of each "
                "assignment whose slot was at least half in view for one second.  Each "
                "counts as a seen impression once per visitor and story, only from the "
                "browser the token was issued to, only while the story runs, never past the "
                "headline's readers served, and within the address's impression budget.  "
                "Every token is checked before anything is counted: one bad token refuses "
                "the whole beacon.  The answer's cookie marks each reported impression "
                "seen, so the reader's pages ask for no more beacons for it.",
                "parameters": _READER_PARAMETERS[:1],
                "requestBody": _beacon_body(
                    _object(
                        {
                            "tokens": {
                                "type": "array",
                                "items": {"type": "string", "minLength": 1, "maxLength": 511},
                                "minItems": 1,
                                "maxItems": 20,
                                "description": "The token of each assignment seen (the batch "
                                "answer's token).",
                            }
                        },
                        additionalProperties=True,
                    )
                ),
                "responses": {
                    "204": {
                        "description": "Received; repeats, tokens over an hour old and stories no "
                        "longer running count nothing."
                    },
                    "400": _json(
                        'Not {"tokens": [...]}: a body over 16 kB, more than 20 tokens, or a '
                        "token this service did not sign."
                    ),
                    "403": _json("A token issued to another browser: nothing counted."),
                },
            }
        },
        "/api/v1/engaged": {
            "post": {
                "tags": ["readers"],
                "summary": "The engaged-time beacon: a click became a quality click",
                "description": "Sent by /abtest.js on a story page (abtest's own, or any page "
                "with the snippet) once the reader's engaged time (the tab visible and the "
                "reader active recently) reaches ABTEST_QUALITY_SECONDS.  The visitor's "
                "counted click on that story becomes a quality click, once; without a "
                "counted click, or below the threshold, nothing is counted.",
                "parameters": _READER_PARAMETERS[:1],
                "requestBody": _beacon_body(
                    _object(
                        {
                            "experiment": {"type": "string", "pattern": SLUG_RE.pattern},
                            "seconds": {
                                "type": "number",
                                "minimum": 0,
                                "description": "The engaged time on the story page, in seconds.",
                            },
                        },
                        additionalProperties=True,
                    )
                ),
                "responses": {
                    "204": {"description": "Received, counted or not."},
                    "400": _json(
                        'Not {"experiment": "<slug>", "seconds": <number, 0 or more>}, or a '
                        "body over 16 kB."
                    ),
                    "404": _json("No experiment has this slug."),
                },
            }
        },
        "/api/v1/experiments/{slug}/stats": {
            "get": {
                "tags": ["stats"],
                "summary": "The stats document",
                "description": "For a signed-in editor or a Bearer-token caller.",
                "security": [{"apiToken": []}, {"editorSession": []}],
                "parameters": [_SLUG],
                "responses": {
                    "200": _json("The stats document.", "StatsDocument"),
                    "401": _json(
                        "Neither an editor's session nor the right token.",
                        headers={
                            "WWW-Authenticate": {"schema": {"const": 'Bearer realm="abtest"'}}
                        },
                    ),
                    "404": _json("No experiment has this slug."),
                },
            }
        },
        "/api/v1/experiments/{slug}/pause": {
            "post": _api_action(
                "Pause a test: every reader gets headline A, uncounted", "a running test"
            )
        },
        "/api/v1/experiments/{slug}/resume": {
            "post": _api_action("Resume a paused test", "a paused test")
        },
        "/api/v1/experiments/{slug}/reopen": {
            "post": _api_action("Reopen a decided test: readers are tested again", "a decided test")
        },
        "/api/v1/experiments/{slug}/decide": {
            "post": _api_action(
                "Choose the winner: every reader gets it, counting stops",
                "a running or paused test",
                body={
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "variant": {
                                        "type": "string",
                                        "description": "A variant id, any case: b or B",
                                    }
                                },
                                "required": ["variant"],
                            }
                        }
                    },
                },
            )
        },
        "/api/v1" + PATH: {
            "get": {
                "tags": ["operations"],
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {_JSON: {}}}},
            }
        },
        # -- operations -------------------------------------------------------------
        "/healthz/live": {"get": _live("What a load balancer probes")},
        "/healthz": {"get": _live("The same as /healthz/live")},
        "/healthz/ready": {
            "get": {
                "tags": ["operations"],
                "summary": "Readiness: Redis answers and holds the stories",
                "description": "What an orchestrator's readiness check probes.",
                "responses": {
                    "200": _json("Ready.", "Ready"),
                    "503": _json("Not ready, and why.", "Ready"),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "description": "Requests by route and status, impressions and clicks by "
                "outcome and reason, Redis latency, the circuit breaker (docs/operations.md).",
                "security": [{"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "The Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _json("A missing or wrong token."),
                    "404": _json("Neither ABTEST_METRICS_TOKEN nor ABTEST_API_TOKEN is set."),
                },
            }
        },
        # -- the dashboard ------------------------------------------------------------
        "/dashboard/login": {
            "get": _page("The sign-in form", tag="dashboard-public"),
            "post": {
                "tags": ["dashboard-public"],
                "summary": "Sign in",
                "description": "Ten failed sign-ins for one name from one address lock that "
                "name out there for 15 minutes.",
                "requestBody": _form(
                    {
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                        "next": {"type": "string", "description": "A path on this site."},
                    },
                    ["username", "password"],
                ),
                "responses": {
                    "303": _redirect("Signed in: to next, else /dashboard/."),
                    "400": _html("A missing or expired CSRF token."),
                    "401": _html("The name and password don't match an editor."),
                    "429": _html(
                        "Locked out for now.",
                        headers={"Retry-After": {"schema": {"type": "integer"}}},
                    ),
                },
            },
        },
        "/dashboard/logout": {
            "post": _dashboard_post(
                "Sign out (with everywhere=1: every session of this editor)",
                _form({"everywhere": {"type": "string"}}),
                "Signed out: to /dashboard/login.",
            )
        },
        "/dashboard/": {"get": _page("The experiments, with their verdicts")},
        "/dashboard/api/experiments": {
            "get": _dashboard_json(
                "The list's live data",
                "What the open list fetches every few seconds.",
                {
                    "type": "object",
                    "properties": {
                        "updated_at": {"type": "string"},
                        "updated_at_text": {"type": "string"},
                        "experiments": {"type": "array", "items": {"type": "object"}},
                        "fragments": fragments,
                    },
                },
            )
        },
        "/dashboard/{slug}": {
            "get": {
                **_page(
                    "One experiment, live: verdict, table, tests, charts, audit log",
                    **{"404": _NOT_FOUND_PAGE},
                ),
                "parameters": [
                    _SLUG,
                    {
                        "name": "every",
                        "in": "query",
                        "required": False,
                        "description": "Seconds between live updates (0.5 to 300).",
                        "schema": {"type": "number"},
                    },
                ],
            }
        },
        "/dashboard/api/experiments/{slug}": {
            "get": {
                **_dashboard_json(
                    "One experiment's live data",
                    "What the open experiment page fetches every few seconds: its state, the "
                    "stats document and the page's fragments.",
                    {
                        "type": "object",
                        "properties": {
                            "experiment": {"type": "string"},
                            "status": {"type": "string", "enum": list(STATUSES)},
                            "report": _ref("StatsDocument"),
                            "fragments": fragments,
                        },
                    },
                ),
                "parameters": [_SLUG],
            }
        },
        "/dashboard/{slug}/decide": {
            "parameters": [_SLUG],
            "get": {
                **_page(
                    "Confirm the winner: the verdict and what choosing now costs",
                    **{
                        "400": _html("A variant that is not a headline's letter."),
                        "404": _html("No such experiment, or no such headline."),
                    },
                ),
                "parameters": [_VARIANT_QUERY],
            },
            "post": _dashboard_post(
                "Choose the winner: every reader gets it from the next request on",
                _form({"variant": {"type": "string"}}, ["variant"]),
            ),
        },
        "/dashboard/{slug}/pause": {
            "parameters": [_SLUG],
            "post": _dashboard_post("Pause: the story stays, headline A, uncounted", _form({})),
        },
        "/dashboard/{slug}/resume": {
            "parameters": [_SLUG],
            "post": _dashboard_post("Resume a paused test", _form({})),
        },
        "/dashboard/{slug}/reopen": {
            "parameters": [_SLUG],
            "get": _page(
                "Confirm reopening: the losing headlines come back to readers",
                **{"404": _NOT_FOUND_PAGE},
            ),
            "post": _dashboard_post("Reopen a decided test", _form({})),
        },
        "/dashboard/{slug}/settings": {
            "parameters": [_SLUG],
            "post": _dashboard_post(
                "Change the allocation, the threshold of caring, and what the statistics count",
                _form(
                    {
                        "allocation": {"type": "string", "enum": list(ALLOCATIONS)},
                        "caring": {
                            "type": "string",
                            "description": f"Percent of the leader's CTR ({DEFAULT_CARING:.0%} "
                            "by default).",
                        },
                        "reward": {
                            "type": "string",
                            "enum": list(REWARDS),
                            "description": "Every click, or quality clicks only; left out: "
                            "unchanged.",
                        },
                        "denominator": {
                            "type": "string",
                            "enum": list(DENOMINATORS),
                            "description": "Per reader served, or per reader who saw the "
                            "headline; left out: unchanged.",
                        },
                    }
                ),
            ),
        },
        "/dashboard/{slug}/webhook": {
            "parameters": [_SLUG],
            "post": _dashboard_post(
                "Set or remove this experiment's webhook URL",
                _form({"url": {"type": "string"}, "remove": {"type": "string"}}),
                **{"404": _NOT_FOUND_PAGE},
            ),
        },
        "/dashboard/new": {
            "get": _page("The new-experiment form"),
            "post": _dashboard_post(
                "Create an experiment",
                _form(
                    {
                        "slug": {"type": "string", "pattern": SLUG_RE.pattern},
                        "title": {"type": "string"},
                        "headlines": {"type": "string", "description": "One per line."},
                        "body": {"type": "string"},
                        "allocation": {"type": "string", "enum": list(ALLOCATIONS)},
                        "caring": {"type": "string"},
                        "then": {
                            "type": "string",
                            "enum": ["start", "draft", "schedule"],
                            "description": "Start testing now (the default), save a draft, "
                            "or schedule it for starts_at.",
                        },
                        "starts_at": _STARTS_AT,
                    }
                ),
                "Created: to its page.",
                **{"422": _html("The form again, each mistake named; nothing created.")},
            ),
        },
        "/dashboard/{slug}/start": {
            "parameters": [_SLUG],
            "post": _dashboard_post("Start a draft or scheduled story now", _form({})),
        },
        "/dashboard/{slug}/schedule": {
            "parameters": [_SLUG],
            "post": _dashboard_post(
                "Schedule a draft: it goes live by itself at its start time",
                _form({"starts_at": _STARTS_AT}, ["starts_at"]),
            ),
        },
        "/dashboard/{slug}/unschedule": {
            "parameters": [_SLUG],
            "post": _dashboard_post("Take a scheduled story back to a draft", _form({})),
        },
        "/dashboard/{slug}/archive": {
            "parameters": [_SLUG],
            "post": _dashboard_post(
                "Archive a paused or decided story: off the front page, still at its address",
                _form({}),
            ),
        },
        "/dashboard/{slug}/unarchive": {
            "parameters": [_SLUG],
            "post": _dashboard_post("Bring an archived story back", _form({})),
        },
        "/dashboard/{slug}/move": {
            "parameters": [_SLUG],
            "post": _dashboard_post(
                "Move a story on the front page",
                _form(
                    {
                        "direction": {"type": "string", "enum": ["up", "down", "top"]},
                        "position": {
                            "type": "string",
                            "description": "1 or more (1 is the top), when no direction",
                        },
                        "back": {
                            "type": "string",
                            "description": "front-page: return to the front page's order",
                        },
                    }
                ),
            ),
        },
        "/dashboard/{slug}/edit": {
            "parameters": [_SLUG],
            "get": _page(
                "Edit the title, headlines and story (while nobody has been counted)",
                **{"404": _NOT_FOUND_PAGE, "409": _html("The form, and why it can't be edited.")},
            ),
            "post": _dashboard_post(
                "Save the edited text",
                _form(
                    {
                        "title": {"type": "string"},
                        "headlines": {"type": "string", "description": "One per line."},
                        "body": {"type": "string"},
                    }
                ),
                "Saved: to the experiment's page.",
                **{
                    "409": _html("Readers have been counted: nothing changed."),
                    "422": _html("The form again, each mistake named; nothing changed."),
                },
            ),
        },
        "/dashboard/{slug}/preview": {
            "parameters": [_SLUG],
            "get": {
                **_page(
                    "One headline as readers will see it, with the reader pages' templates",
                    "Counts nothing and sets no cookie.",
                    **{
                        "400": _html("A variant that is not a letter, or an unknown page."),
                        "404": _html("No such experiment, or no such headline."),
                    },
                ),
                "parameters": [
                    {**_VARIANT_QUERY, "description": "The headline to show (a by default)."},
                    {
                        "name": "page",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["front", "story"]},
                    },
                ],
            },
        },
        "/dashboard/archived": {"get": _page("The archived stories")},
        "/dashboard/front-page": {"get": _page("The front page's order, to change it")},
        "/dashboard/{slug}/counts.csv": {
            "get": _export("Each headline's counts", "text/csv"),
        },
        "/dashboard/{slug}/series.csv": {
            "get": {
                **_export("Counts over time", "text/csv"),
                "parameters": [
                    _SLUG,
                    {
                        "name": "resolution",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["minute", "hour"]},
                    },
                ],
            }
        },
        "/dashboard/{slug}/export.json": {
            "get": _export("Counts, series, stats and the audit log", _JSON),
        },
        "/dashboard/data-loss/acknowledge": {
            "post": _dashboard_post(
                "Say you have seen the warning that Redis lost its data", _form({})
            ),
        },
        "/dashboard/static/{filename}": {
            "get": {
                "tags": ["dashboard-public"],
                "summary": "The dashboard's scripts and styles",
                "parameters": [_FILENAME],
                "responses": {"200": {"description": "The file."}, "404": _html("No such file.")},
            }
        },
    }


_FILENAME = {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
_STARTS_AT = {
    "type": "string",
    "description": "UTC, as a datetime-local field sends it: 2026-12-02T09:30",
}


def _live(summary: str) -> dict:
    return {
        "tags": ["operations"],
        "summary": summary,
        "description": "200 whenever the process serves requests; never touches Redis.",
        "responses": {"200": _json("Live.", "Live")},
    }


def _export(summary: str, media_type: str) -> dict:
    return {
        "tags": ["dashboard"],
        "summary": summary,
        "security": _EDITOR,
        "parameters": [_SLUG],
        "responses": {
            "200": {
                "description": "A download (Content-Disposition: attachment).",
                "content": {media_type: {}},
            },
            "302": _redirect("Not signed in: to /dashboard/login."),
            "404": _NOT_FOUND_PAGE,
        },
    }


@functools.cache
def _document(public_url: str | None, session_cookie: str) -> str:
    return json.dumps(document(public_url, session_cookie), ensure_ascii=False)


def document(public_url: str | None = None, session_cookie: str = "session") -> dict:
    """The OpenAPI document; ``public_url`` (ABTEST_PUBLIC_URL) is its server when set."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "abtest",
            "version": __version__,
            "summary": "Headline A/B testing for newsrooms.",
            "description": "The contract in words, with the counting rules and their "
            'reasons: docs/api.md.  Every JSON refusal is {"error": message}; every page '
            "refusal is a short HTML page; nothing ever shows a stack trace.  A request "
            "body over ABTEST_MAX_BODY gets 413 unread, a wrong method 405 with Allow, and "
            "a Redis outage 503 with Retry-After wherever Redis is needed (reader pages are "
            "still served, uncounted).",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": public_url or "/"}],
        "tags": [
            {"name": "readers", "description": "What readers' browsers ask for."},
            {"name": "stats", "description": "The stats document."},
            {"name": "actions", "description": "The dashboard's actions, for scripts."},
            {"name": "operations", "description": "Health checks, metrics, this document."},
            {"name": "dashboard", "description": "The editors' pages (signed in)."},
            {"name": "dashboard-public", "description": "Signing in, and the dashboard's files."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ABTEST_API_TOKEN; in development, generated into the data "
                    "directory (`abtest api-token` prints it).",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ABTEST_METRICS_TOKEN, else the API token.",
                },
                "editorSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": session_cookie,
                    "description": "An editor's session, from signing in at /dashboard/login "
                    "(HttpOnly, SameSite=Lax; kept in Redis, ended by signing out, by the "
                    "editor's removal or after ABTEST_SESSION_IDLE without a request).  "
                    "Every POST also carries the page's CSRF token.",
                },
            },
        },
    }


def view() -> Response:
    """``GET /api/v1/openapi.json``: public, like the pages it describes."""
    settings = current_app.extensions["abtest"]["settings"]
    body = _document(settings.public_url, current_app.config["SESSION_COOKIE_NAME"])
    response = Response(body, mimetype=_JSON)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
