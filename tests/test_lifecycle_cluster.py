"""An experiment's life on a real Redis Cluster: every publishing script touches
one story's keys only (one hash tag, one slot), so drafts, schedules, edits,
archive and the front page's order work with the stories spread over masters."""

from __future__ import annotations

import pytest
from conftest import TEST_SECRET
from redis.cluster import RedisCluster
from topologies import Cluster

from abtest import keys
from abtest.config import Settings
from abtest.model import DECIDED, DRAFT, RUNNING, SCHEDULED, Definition
from abtest.service import Service
from abtest.store import connect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    started = Cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield started
    started.stop()


@pytest.fixture
def service(cluster, tmp_path):
    client = connect(cluster.url, timeout=5)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    made = Service.from_settings(
        Settings(redis_url=cluster.url, data_dir=tmp_path / "data", secret_key=TEST_SECRET),
        client,
    )
    yield made
    made.stop()
    client.close()


def story(i: int) -> Definition:
    return Definition(f"story-{i}", f"Story {i}", (f"Story {i}", f"Story {i}, told"), ("Text.",))


def test_the_publishing_actions_on_stories_spread_over_every_master(service):
    client = service.store.redis
    stories = [story(i) for i in range(12)]
    nodes = {client.get_node_from_key(keys.meta(s.slug)).name for s in stories}
    assert len(nodes) == 3  # the stories live on every master
    now = service.clock()
    for i, definition in enumerate(stories):
        status = (DRAFT, SCHEDULED, RUNNING)[i % 3]
        service.create(
            definition, status=status, starts_at=now + 3600 if status == SCHEDULED else None
        )
    assert {e.slug for e in service.front_page_order()} == {s.slug for s in stories[2::3]}

    for definition in stories[0::3]:  # the drafts: edited, then started
        edited = Definition(definition.slug, "Edited", definition.headlines, definition.body)
        assert service.edit(definition.slug, edited, editor="ed").definition.title == "Edited"
        assert service.start(definition.slug, editor="ed").status == RUNNING
    for definition in stories[1::3]:  # the scheduled: their time comes
        client.hset(keys.meta(definition.slug), "starts_at", repr(now - 1))
    assert all(e.status == RUNNING for e in service.fresh_all())

    order = [e.slug for e in service.front_page_order()]
    service.move(order[-1], 1, editor="ed")
    assert [e.slug for e in service.front_page_order()] == [order[-1], *order[:-1]]
    moved = order[-1]
    service.decide(moved, "b", editor="ed")
    service.archive(moved, editor="ed")
    assert moved not in [e.slug for e in service.front_page_order()]
    (result,) = service.store.record_impressions([(moved, "a")])
    assert result.status == DECIDED and not result.counted
    assert [e["action"] for e in service.audit(moved)][:3] == ["archive", "decide", "move"]
