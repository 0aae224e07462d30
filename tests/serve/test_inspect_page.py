"""The Inspect page keeps its figures between clips and only swaps their data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.predictor import Predictor
from serve.analysis import conv_layers
from serve.config import Limits
from serve.pages.inspect import InspectPage
from serve.session import Session
from viz.featuremaps import mosaic


class _Shared:
    def __init__(self, predictor):
        self.predictor, self.limits = predictor, Limits()


@pytest.fixture(scope="module")
def page(tiny_checkpoint):
    session = Session(_Shared(Predictor.load(tiny_checkpoint)))
    with session.tab("Inspect"):
        p = InspectPage(session)
    session.activate("Inspect")
    return p


def _wav(fsdd_dir: Path, name: str) -> bytes:
    return (fsdd_dir / name).read_bytes()


def _image(fig):
    return [r for r in fig.renderers if "image" in r.data_source.data][0].data_source.data["image"][0]


def test_second_clip_reuses_figures_and_shows_its_own_data(page, fsdd_dir):
    assert page.session.load_bytes(_wav(fsdd_dir, "3_george_1.wav"), "a.wav")
    figs, first = dict(page._figs), page.analysis
    layer = conv_layers(first.acts)[0]
    page.filter_select.value = (layer, 2)               # the user picks a filter
    filter_fig = page._filter_fig
    assert page.session.load_bytes(_wav(fsdd_dir, "7_lucas_3.wav"), "b.wav")
    a = page.analysis
    assert a is not first and page._figs.keys() == figs.keys()
    assert all(page._figs[k] is figs[k] for k in figs)  # the same Bokeh figures...
    np.testing.assert_array_equal(_image(figs["spec"]), a.features.astype(np.float32))
    for name in conv_layers(a.acts):                     # ...now drawing the new clip
        np.testing.assert_array_equal(_image(figs[("map", name)]), mosaic(a.acts[name])[0])
    labels = page.session.predictor.labels
    assert list(figs["probs"].y_range.factors)[-1] == labels[a.top]
    assert "b.wav" in page.header.value
    assert page.filter_select.value == (layer, 2)       # the chosen filter stays...
    assert page._filter_fig is filter_fig and page._filter_for is a   # ...for the new clip
    np.testing.assert_array_equal(_image(filter_fig), a.acts[layer][:, :, 2].astype(np.float32))



def test_the_chosen_filter_is_heard_from_work_done_before_the_page_is_touched(page, fsdd_dir,
                                                                             monkeypatch):
    # The filter's Griffin-Lim runs where the clip is analysed (a worker thread when served),
    # not inside _show_clip, which runs on the event loop every session shares.
    import serve.pages.inspect as inspect_mod

    assert page.session.load_bytes(_wav(fsdd_dir, "3_george_1.wav"), "a.wav")
    layer = conv_layers(page.analysis.acts)[1]
    page.filter_select.value = (layer, 1)
    calls, inside = [], []
    real_sonify, real_show = inspect_mod.sonify, InspectPage._show_clip

    def sonify(fmap, params, **kw):
        calls.append((bool(inside), fmap.copy()))
        return real_sonify(fmap, params, **kw) * 0 + len(calls)   # a recognisable sound

    def show_clip(self, *args, **kw):
        inside.append(1)
        try:
            return real_show(self, *args, **kw)
        finally:
            inside.pop()

    monkeypatch.setattr(inspect_mod, "sonify", sonify)
    monkeypatch.setattr(InspectPage, "_show_clip", show_clip)
    assert page.session.load_bytes(_wav(fsdd_dir, "9_jackson_0.wav"), "c.wav")
    a = page.analysis
    assert len(calls) == 1 and calls[0][0] is False             # made once, before the page
    np.testing.assert_array_equal(calls[0][1], a.acts[layer][:, :, 1])
    assert page._filter_for is a and np.all(page._filter_audio.object == 1)

def test_model_view_is_built_when_first_shown(tiny_checkpoint):
    import panel as pn
    from bokeh.models import DataTable

    from engine.predictor import layer_parameters, named_weights

    session = Session(_Shared(Predictor.load(tiny_checkpoint)))
    page = InspectPage(session)
    toggle, body, model = page.model_toggle, page.model_body, session.predictor.model
    n_params = sum(int(w.size) for w in named_weights(model).values())
    assert not toggle.value and not body.visible and body.objects == []  # nothing built yet
    assert session.predictor.arch in toggle.name and f"{n_params:,} parameters" in toggle.name
    toggle.value = True
    assert body.visible
    tables = [o.object for o in body.objects if isinstance(getattr(o, "object", None), DataTable)]
    grids = [o for o in body.objects if isinstance(o, pn.GridBox)]
    assert len(tables) == 1 and len(grids) == 1
    titles = [p.object.title.text for p in grids[0].objects]
    assert titles == list(layer_parameters(model))          # one histogram per layer, in order
    built = list(body.objects)
    toggle.value = False
    assert not body.visible
    toggle.value = True                                   # hiding and showing keeps them
    assert body.visible and body.objects == built
