"""Hidden pages do no work for a new clip; they catch up when their tab is shown."""

from types import SimpleNamespace

import numpy as np

from data.features import ddevis_stft
from serve.config import Limits
from serve.session import Clip, Session


def _session():
    shared = SimpleNamespace(predictor=SimpleNamespace(params=ddevis_stft()), limits=Limits())
    return Session(shared)


def _clip(name):
    return Clip(name, np.zeros(8000, np.float32), 8000)


def test_listeners_of_hidden_tabs_wait_until_shown():
    s = _session()
    calls = {"A": [], "B": [], "sidebar": []}
    s.on_clip(lambda c: calls["sidebar"].append(c.name))
    for tab in ("A", "B"):
        with s.tab(tab):
            s.on_clip(lambda c, tab=tab: calls[tab].append(c.name))
    s.activate("A")
    s.set_clip(_clip("one"))
    s.set_clip(_clip("two"))
    assert calls == {"A": ["one", "two"], "B": [], "sidebar": ["one", "two"]}
    s.activate("B")  # shown: catches up once, with the current clip only
    assert calls["B"] == ["two"]
    s.activate("A")  # A was up to date: no recomputation
    s.activate("B")
    assert calls["A"] == ["one", "two"] and calls["B"] == ["two"]


def test_untagged_listeners_always_run():
    s = _session()
    seen = []
    s.on_clip(lambda c: seen.append(c.name))
    s.set_clip(_clip("x"))  # no tab active at all
    assert seen == ["x"]
