"""Health checks: is the process serving, and is it ready for readers.

``GET /healthz/live`` answers 200 whenever the process serves requests; it
never touches Redis.  A load balancer probes this one: readers are served
while Redis is away (uncounted), so a counting outage must not take the site
out of the balancer.  ``/healthz`` is the same check, for load balancers set
up before the split.

``GET /healthz/ready`` answers 200 only when Redis answers within the Redis
timeout and holds what readers need (the seed story, when
``ABTEST_LOAD_SEED`` is on, and the instance marker this process knows: see
:mod:`abtest.watch`), else 503 with the reason.  An orchestrator's readiness
check probes this one (to hold traffic back from an instance that has not
got its data yet), never its liveness check, which would restart healthy
processes during a Redis outage.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..watch import watch

blueprint = Blueprint("health", __name__)

#: Health responses describe this moment: no cache keeps them.
_NO_STORE = {"Cache-Control": "no-store"}


@blueprint.get("/healthz/live")
@blueprint.get("/healthz")
def live():
    return jsonify(status="ok"), 200, _NO_STORE


@blueprint.get("/healthz/ready")
def ready():
    healthy, reason = watch(current_app).readiness()
    if healthy:
        return jsonify(status="ok", redis="ok"), 200, _NO_STORE
    return jsonify(status="unavailable", reason=reason), 503, _NO_STORE
