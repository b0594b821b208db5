"""The counting connections against a real Redis: sent once, never a stray reply, one per worker."""

from __future__ import annotations

import os

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from abtest.counting import CountingConnections, pack_evalsha

# A count as the store's scripts make them: one increment per call, the new value back.
INCR = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
def counting(redis_client) -> CountingConnections:
    connections = CountingConnections(redis_client)
    yield connections
    connections.close()


def client_id(counting: CountingConnections) -> int:
    """The server's id of the connection the next count goes out on."""
    (found,) = counting.send([("CLIENT", "ID")])
    return found


def test_calls_go_in_one_round_trip_and_a_flushed_script_runs_once(counting, redis_client):
    incr = redis_client.register_script(INCR)
    assert counting.evalsha_many(incr, [(["k1"], []), (["k2"], []), (["k1"], [])]) == [1, 1, 2]
    # After SCRIPT FLUSH every call is answered NOSCRIPT (it did not run): the
    # script is loaded and each call sent again, once.
    redis_client.script_flush()
    assert counting.evalsha_many(incr, [(["k1"], []), (["k2"], [])]) == [3, 2]
    assert redis_client.mget("k1", "k2") == ["3", "2"]


def test_an_error_reply_is_raised_after_every_reply_is_read(counting, redis_client):
    fails = redis_client.register_script("return redis.error_reply('refused')")
    with pytest.raises(redis.ResponseError, match="refused"):
        counting.evalsha_many(fails, [([], [])])
    assert counting.send([("ECHO", "mine")]) == ["mine"]  # nothing left unread


def test_a_connection_the_server_closed_is_replaced_before_use(counting, redis_client):
    # Redis's idle timeout, a restart or CLIENT KILL close a connection between
    # requests; the next count must go out on a fresh one, not fail.
    incr = redis_client.register_script(INCR)
    counting.evalsha_many(incr, [(["k"], [])])
    redis_client.client_kill_filter(_id=client_id(counting))
    counting.IDLE_CHECK = 0.0  # checked whenever it has been idle at all
    assert counting.evalsha_many(incr, [(["k"], [])]) == [2]


def test_a_forked_worker_counts_on_its_own_connection(counting, redis_client):
    # gunicorn forks its workers after the app (and its store) is built: a
    # worker talking on its parent's socket would read its siblings' replies.
    incr = redis_client.register_script(INCR)
    parents = client_id(counting)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        childs = client_id(counting)
        counting.evalsha_many(incr, [(["k"], [])])
        os.write(write, str(childs).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert int(os.read(read, 64)) != parents
    assert client_id(counting) == parents  # the parent keeps its own
    assert redis_client.get("k") == "1"


def test_a_count_interrupted_between_replies_leaves_no_reply_behind(redis_client):
    # An exception between two replies (a signal's, say) must not leave the
    # second reply on the connection, where the next count would read it.
    pool = redis_client.connection_pool

    class Interrupted(pool.connection_class):
        countdown = None  # the read that raises, counting down, when set

        def read_response(self, *args, **kwargs):
            if Interrupted.countdown is not None:
                Interrupted.countdown -= 1
                if Interrupted.countdown == 0:
                    Interrupted.countdown = None
                    raise RuntimeError("interrupted between two replies")
            return super().read_response(*args, **kwargs)

    flaky_client = redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=Interrupted, **pool.connection_kwargs)
    )
    counting = CountingConnections(flaky_client)
    incr = flaky_client.register_script(INCR)
    counting.evalsha_many(incr, [(["one"], [])])  # loads the script, connects
    Interrupted.countdown = 2
    with pytest.raises(RuntimeError):
        counting.evalsha_many(incr, [(["one"], []), (["other"], [])])
    assert counting.evalsha_many(incr, [(["third"], [])]) == [1]  # its own reply, not "other"'s
    counting.close()
    flaky_client.close()


def test_counting_leaves_the_pools_connections_to_everything_else(redis_url):
    # The refresh, the dashboard and health checks borrow from the client's
    # pool; counting must not use up a limited pool.
    limited = redis.Redis.from_url(redis_url, decode_responses=True, max_connections=1)
    counting = CountingConnections(limited)
    incr = limited.register_script(INCR)
    assert counting.evalsha_many(incr, [(["k"], [])]) == [1]
    assert limited.ping()
    assert limited.get("k") == "1"
    assert counting.evalsha_many(incr, [(["k"], [])]) == [2]
    counting.close()
    limited.close()


_ARGS = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(),
)


@given(
    sha=st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
    names=st.lists(st.text(min_size=1), max_size=6),
    args=st.lists(_ARGS, max_size=8),
)
def test_pack_evalsha_is_byte_for_byte_redis_pys_own(sha, names, args):
    """The counting scripts' own packer against redis-py's Connection.pack_commands,
    for text (any Unicode), integers, floats and bytes, with each head packed
    once and reused."""
    stock = b"".join(
        redis.Connection().pack_commands([("EVALSHA", sha, len(names), *names, *args)])
    )
    assert pack_evalsha(sha, names, args) == stock
    assert pack_evalsha(sha, tuple(names), list(args)) == stock  # the kept head again


def test_pack_evalsha_refuses_what_redis_py_refuses():
    with pytest.raises(TypeError):
        pack_evalsha("0" * 40, ["k"], [None])
    with pytest.raises(redis.DataError):
        redis.Connection().pack_commands([("EVALSHA", "0" * 40, 1, "k", None)])
