"""otel_showmax.uwsgi and otel_showmax.gunicorn without a server: chaining, checks, no-ops.

The real servers are exercised in tests/integration/test_uwsgi.py and test_gunicorn.py; here a
fake ``uwsgi`` module checks that existing hooks are kept and called, and which option
combinations produce a warning.
"""

from __future__ import annotations

import sys
import types

import pytest

from otel_showmax import _setup
from otel_showmax import gunicorn as gunicorn_hooks
from otel_showmax import uwsgi as uwsgi_hooks
from otel_showmax._instrumentation import uwsgi_hooks as hooks_impl


@pytest.fixture
def fake_uwsgi(monkeypatch):
    module = types.ModuleType("uwsgi")
    module.opt = {"master": True, "lazy-apps": b"true", "gevent": b"100"}
    module.has_threads = 1
    module.loop = b"gevent"
    module.worker_id = lambda: 1
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
    monkeypatch.setattr(hooks_impl, "_installed_in", None)
    return module


def test_install_chains_existing_post_fork_and_atexit_hooks(fake_uwsgi, monkeypatch):
    calls = []
    fake_uwsgi.post_fork_hook = lambda: calls.append("app post_fork")
    fake_uwsgi.atexit = lambda: calls.append("app atexit")
    monkeypatch.setattr(_setup, "ensure_process", lambda: calls.append("ensure_process"))
    monkeypatch.setattr(_setup, "get_state", lambda: object())
    monkeypatch.setattr(_setup, "shutdown", lambda timeout=None: calls.append("shutdown"))

    assert uwsgi_hooks.install() is True
    assert uwsgi_hooks.install() is True  # once
    fake_uwsgi.post_fork_hook()
    fake_uwsgi.atexit()
    # Ours first after fork (the app's hook may log); the app's atexit first, then our flush.
    assert calls == ["ensure_process", "app post_fork", "app atexit", "shutdown"]


def test_a_failing_app_hook_does_not_skip_ours(fake_uwsgi, monkeypatch, capsys):
    calls = []

    def broken() -> None:
        raise RuntimeError("boom")

    fake_uwsgi.atexit = broken
    monkeypatch.setattr(_setup, "get_state", lambda: object())
    monkeypatch.setattr(_setup, "shutdown", lambda timeout=None: calls.append("shutdown"))
    uwsgi_hooks.install()
    fake_uwsgi.atexit()
    assert calls == ["shutdown"]
    assert "boom" in capsys.readouterr().err


def test_install_joins_the_uwsgidecorators_chain(fake_uwsgi, monkeypatch):
    decorators = types.ModuleType("uwsgidecorators")
    decorators.postfork_chain = [lambda: calls.append("decorated")]

    def postfork_chain_hook() -> None:
        for fn in decorators.postfork_chain:
            fn()

    decorators.postfork_chain_hook = postfork_chain_hook
    fake_uwsgi.post_fork_hook = postfork_chain_hook
    monkeypatch.setitem(sys.modules, "uwsgidecorators", decorators)
    calls: list[str] = []
    monkeypatch.setattr(_setup, "ensure_process", lambda: calls.append("ensure_process"))

    uwsgi_hooks.install()
    assert fake_uwsgi.post_fork_hook is postfork_chain_hook  # left to uwsgidecorators
    fake_uwsgi.post_fork_hook()
    assert calls == ["ensure_process", "decorated"]


def test_not_under_uwsgi(monkeypatch):
    monkeypatch.setitem(sys.modules, "uwsgi", None)  # import uwsgi raises ImportError
    monkeypatch.setattr(hooks_impl, "_installed_in", None)
    assert uwsgi_hooks.install() is False
    assert uwsgi_hooks.running_under_uwsgi() is False
    assert not uwsgi_hooks.installed()


@pytest.mark.parametrize(
    ("opt", "has_threads", "loop", "worker_id", "expected"),
    [
        ({"master": True, "lazy-apps": b"true", "gevent": b"100"}, 1, "gevent", 1, []),
        ({"master": True, "lazy-apps": True, "gevent-early-monkey-patch": True, "py-call-uwsgi-fork-hooks": True},
         1, "gevent", 1, ["segmentation fault"]),
        ({"master": True, "lazy-apps": b"1"}, 0, "", 1, ["enable-threads"]),
        ({"master": True, "lazy-apps": b"1", "gevent": b"10"}, 0, "gevent", 1, []),  # the gevent loop runs them
        ({"master": True}, 1, "gevent", 0, ["no lazy-apps"]),
        ({"master": True, "lazy-apps": b"false"}, 1, "gevent", 0, ["no lazy-apps"]),
        ({"master": True, "lazy-apps": [b"false", b"true"]}, 1, "gevent", 0, []),  # the last one wins
        ({"master": True, "py-call-uwsgi-fork-hooks": True}, 1, "gevent", 0, []),  # the forking thread holds the GIL
        ({}, 1, "", 1, []),
    ],
)
def test_check_names_known_bad_combinations(opt, has_threads, loop, worker_id, expected):
    messages = uwsgi_hooks.check(opt, has_threads=has_threads, loop=loop, worker_id=worker_id)
    assert len(messages) == len(expected), messages
    for message, needle in zip(messages, expected, strict=True):
        assert needle in message


def test_gunicorn_hooks_are_no_ops_when_not_configured():
    assert _setup.get_state() is None
    gunicorn_hooks.post_fork(None, None)
    gunicorn_hooks.worker_exit(None, None)
    gunicorn_hooks.worker_abort(None)
    assert _setup.get_state() is None


def test_gunicorn_worker_exit_and_abort_flush_with_their_budgets(monkeypatch):
    calls = []
    monkeypatch.setattr(_setup, "get_state", lambda: object())
    monkeypatch.setattr(_setup, "shutdown", lambda timeout=None: calls.append(timeout))
    gunicorn_hooks.worker_exit(None, None)
    gunicorn_hooks.worker_abort(None)
    assert calls == [None, gunicorn_hooks.ABORT_BUDGET]


def test_gunicorn_worker_exit_never_raises(monkeypatch):
    class Log:
        messages: list[str] = []

        def warning(self, message, *args):
            self.messages.append(message % args)

    server = types.SimpleNamespace(log=Log())

    def broken(timeout=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(_setup, "get_state", lambda: object())
    monkeypatch.setattr(_setup, "shutdown", broken)
    gunicorn_hooks.worker_exit(server, None)
    assert "boom" in server.log.messages[0]
