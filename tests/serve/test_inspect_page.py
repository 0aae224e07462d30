"""The Inspect page keeps its figures between clips and only swaps their data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.predictor import Predictor
from serve.config import Limits
from serve.pages.inspect import InspectPage, conv_layers
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
    assert "b.wav" in page.header.object
    assert page.filter_select.value == (layer, 2)       # the chosen filter stays...
    assert page._filter_fig is filter_fig and page._filter_for is a   # ...for the new clip
    np.testing.assert_array_equal(_image(filter_fig), a.acts[layer][:, :, 2].astype(np.float32))


def test_model_card_is_built_when_first_opened(tiny_checkpoint):
    from bokeh.models import DataTable, GridPlot

    from engine.predictor import layer_parameters, named_weights

    session = Session(_Shared(Predictor.load(tiny_checkpoint)))
    page = InspectPage(session)
    card, model = page.model_view, session.predictor.model
    n_params = sum(int(w.size) for w in named_weights(model).values())
    assert card.collapsed and card.objects == []          # nothing built for a closed card
    assert session.predictor.arch in card.title and f"{n_params:,} parameters" in card.title
    card.collapsed = False
    bokeh = [o.object for o in card.objects if isinstance(getattr(o, "object", None), object)]
    grids = [b for b in bokeh if isinstance(b, GridPlot)]
    assert len(grids) == 1 and any(isinstance(b, DataTable) for b in bokeh)
    assert len(grids[0].children) == len(layer_parameters(model))  # one histogram per layer
    built = list(card.objects)
    card.collapsed = True
    card.collapsed = False                                # closing and reopening keeps them
    assert card.objects == built
