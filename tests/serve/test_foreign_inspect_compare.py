"""Inspect and Edit & compare on models behind the contract (tiny random Hugging Face models)
and on hearsight's own log-mel model: every layer kind is drawn, heard and compared, and the
input's picture puts a tone on its own frequency."""

from __future__ import annotations

import numpy as np
import pytest

from serve.analysis import layer_kinds
from serve.config import Limits
from serve.pages.compare import ComparePage
from serve.pages.inspect import InspectPage
from serve.session import Session
from viz.featuremaps import mosaic
from viz.picture import hz_label

FAMILIES = ("wav2vec2", "ast")


class _Shared:
    def __init__(self, predictor):
        self.predictor, self.limits = predictor, Limits()


def _tone(predictor, hz: float) -> np.ndarray:
    t = np.arange(predictor.n_samples) / predictor.sample_rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _two_part(predictor) -> np.ndarray:
    """A loud 1 kHz first half, a quiet 2.5 kHz second half: reversing it moves both."""
    t = np.arange(predictor.n_samples) / predictor.sample_rate
    first = t < t[-1] / 2
    return np.where(first, 0.8 * np.sin(2 * np.pi * 1000 * t),
                    0.2 * np.sin(2 * np.pi * 2500 * t)).astype(np.float32)


def _image_renderer(fig):
    return [r for r in fig.renderers if "image" in r.data_source.data][0]


def _image(fig) -> np.ndarray:
    return np.asarray(_image_renderer(fig).data_source.data["image"][0])


def _bars(fig) -> np.ndarray:
    return np.asarray(fig.renderers[0].data_source.data["act"])


def _inspect(predictor, wave) -> InspectPage:
    session = Session(_Shared(predictor))
    with session.tab("Inspect"):
        page = InspectPage(session)
    session.activate("Inspect")
    assert session.load_wave(wave, predictor.sample_rate, "tone", source="synth")
    return page


@pytest.fixture(scope="module", params=FAMILIES, ids=FAMILIES)
def foreign(request, tiny_hf_predictor):
    return tiny_hf_predictor(request.param)


@pytest.fixture(scope="module")
def logmel_predictor(tiny_checkpoint):
    """hearsight's own flax model on 160 log-mel rows: the tiny checkpoint's untrained
    ``ddevis_cnn`` (input 160 × 150) fed 160 mel bands of 8 kHz audio instead of its STFT
    (building a new flax model takes ~30 s of eager initialisation here)."""
    from dataclasses import replace

    from data.features import FeatureParams
    from engine.predictor import Predictor

    p = Predictor.load(tiny_checkpoint)
    mel = FeatureParams(kind="logmel", sample_rate=8000, n_fft=2048, hop_length=53,
                        window="hann", floor=p.params.floor, n_freq=1025,
                        n_frames=p.params.n_frames, n_mels=p.params.n_freq, fmin=20.0,
                        fmax=4000.0)
    assert mel.shape == p.params.shape
    return replace(p, params=mel)


def _axis_position(fig, hz: float) -> float:
    """Where ``hz`` is on ``fig``'s frequency axis, in data units: the tick labelled with it
    on a mel-row axis, else ``hz`` itself (an axis in Hz)."""
    ticks = fig.yaxis[0].major_label_overrides
    if ticks:
        return {label: pos for pos, label in ticks.items()}[hz_label(hz)]
    assert fig.yaxis[0].axis_label == "frequency (Hz)"
    return hz


def _assert_tone_on_its_frequency(fig, hz: float) -> None:
    image, glyph = _image(fig), _image_renderer(fig).glyph
    row_height = glyph.dh / image.shape[0]
    peak_row = int(np.argmax(image.mean(axis=1)))
    drawn_at = (peak_row + 0.5) * row_height
    assert abs(drawn_at - _axis_position(fig, hz)) <= row_height, (peak_row, drawn_at)


@pytest.mark.parametrize("hz", [1000.0, 2000.0], ids=["1kHz", "2kHz"])
def test_a_tone_is_drawn_at_its_frequency_on_the_input_picture(foreign, hz):
    page = _inspect(foreign, _tone(foreign, hz))
    fig = page._figs["spec"]
    np.testing.assert_array_equal(_image(fig), page.analysis.picture.astype(np.float32))
    _assert_tone_on_its_frequency(fig, hz)
    if foreign.input_kind == "waveform":   # the display STFT of the wave, in Hz
        assert _image(fig).shape == (200, 101) and "wave" in fig.title.text
    else:                                  # AST's own 24 mel rows, ticked at real frequencies
        assert _image(fig).shape == tuple(foreign.input_shape)
        assert hz_label(hz) in fig.yaxis[0].major_label_overrides.values()


def test_hearsights_log_mel_picture_puts_1khz_on_1khz(logmel_predictor):
    # The mel rows used to be labelled linearly 0..4 kHz: 1 kHz showed near 1.9 kHz.
    page = _inspect(logmel_predictor, _tone(logmel_predictor, 1000.0))
    fig = page._figs["spec"]
    np.testing.assert_array_equal(_image(fig), page.analysis.features.astype(np.float32))
    _assert_tone_on_its_frequency(fig, 1000.0)
    rows = _image(fig).shape[0]
    linear_hz = (int(np.argmax(_image(fig).mean(axis=1))) + 0.5) * 4000 / rows
    assert linear_hz > 1500                  # what a linear 0..Nyquist axis would have said


def test_inspect_draws_and_plays_every_layer(foreign):
    page = _inspect(foreign, _tone(foreign, 1000.0))
    a, n = page.analysis, foreign.n_samples
    assert page.player.object.shape == (n,) and page.player.sample_rate == foreign.sample_rate
    kinds = layer_kinds(foreign, a.acts)
    assert kinds == {info.name: info.kind for info in foreign.layers}
    options = list(page.filter_select.options.values())
    for layer, kind in kinds.items():
        act = a.acts[layer]
        assert act.shape == dict((i.name, i.shape) for i in foreign.layers)[layer]
        if kind == "freq_time":
            np.testing.assert_array_equal(_image(page._figs[("map", layer)]), mosaic(act)[0])
            picks = [(layer, 0), (layer, act.shape[2] - 1)]
            expected = [act[:, :, 0], act[:, :, -1]]
        elif kind == "vector":
            np.testing.assert_allclose(_bars(page._figs[("dense", layer)]), act, rtol=1e-6)
            picks, expected = [(layer, None)], [None]
        else:                                 # time / sequence: dims up, frames across
            np.testing.assert_array_equal(_image(page._figs[("seq", layer)]), act.T)
            picks, expected = [(layer, None)], [act.T]
        for pick, want in zip(picks, expected):
            assert pick in options
            page.filter_select.value = pick
            shown = page.filter_view.objects[0].object
            if want is None:
                np.testing.assert_allclose(_bars(shown), act, rtol=1e-6)
                assert len(page.filter_view.objects) == 2        # no player for a vector
                continue
            np.testing.assert_array_equal(_image(shown), want.astype(np.float32))
            audio = page._filter_audio
            assert audio.object.shape == (n,) and audio.sample_rate == foreign.sample_rate
            assert np.all(np.isfinite(audio.object)) and np.max(np.abs(audio.object)) > 0.01
    if "layer1" in kinds and foreign.input_kind == "waveform":
        assert _image(page._figs[("seq", "layer1")]).shape == (32, 399)


def test_a_second_clip_refreshes_every_layer_in_place(foreign):
    page = _inspect(foreign, _tone(foreign, 1000.0))
    page.filter_select.value = ("layer1", None)
    figs, filter_fig = dict(page._figs), page._filter_fig
    assert page.session.load_wave(_two_part(foreign), foreign.sample_rate, "two",
                                  source="synth")
    a = page.analysis
    assert page._figs.keys() == figs.keys() and all(page._figs[k] is figs[k] for k in figs)
    np.testing.assert_array_equal(_image(figs["spec"]), a.picture.astype(np.float32))
    for key, fig in figs.items():
        if key[0] == "seq":
            np.testing.assert_array_equal(_image(fig), a.acts[key[1]].T)
    assert page._filter_fig is filter_fig and page._filter_for is a
    np.testing.assert_array_equal(_image(filter_fig), a.acts["layer1"].T)


def test_model_view_lists_layers_with_their_activation_shapes(foreign):
    from bokeh.models import DataTable

    page = _inspect(foreign, _tone(foreign, 1000.0))
    weights = foreign.layer_parameters()
    total = sum(int(w.size) for w in weights.values())
    assert f"{total:,} weights" in page.model_toggle.name
    page.model_toggle.value = True
    table = [o.object for o in page.model_body.objects
             if isinstance(getattr(o, "object", None), DataTable)][0]
    data = table.source.data
    assert list(data["layer"]) == [i.name for i in foreign.layers]
    assert list(data["output_shape"]) == [" × ".join(map(str, i.shape)) for i in foreign.layers]
    grid = page.model_body.objects[-1]
    assert [p.object.title.text for p in grid.objects] == list(weights)[:len(grid.objects)]


def _compare(predictor, wave) -> ComparePage:
    session = Session(_Shared(predictor))
    assert session.load_wave(wave, predictor.sample_rate, "two", source="synth")
    return ComparePage(session)


def _difference(page) -> np.ndarray:
    fig = page.diff_view.objects[0].object
    return _bars(fig) if page.kinds[page.layer_select.value] == "vector" else _image(fig)


def test_compare_every_layer_before_and_after_an_edit(foreign):
    page = _compare(foreign, _two_part(foreign))
    n, sr = foreign.n_samples, foreign.sample_rate
    layers = list(page.layer_select.options)
    assert layers == [i.name for i in foreign.layers]
    for layer in layers:                      # no edit: every difference is exactly zero
        page.layer_select.value = layer
        assert len(page.maps.objects) == 2
        assert np.max(np.abs(_difference(page))) == 0.0
    page.add_edit("reverse", {})
    edited = page.side_b.objects[1]
    assert edited.object.shape == (n,) and edited.sample_rate == sr
    np.testing.assert_allclose(page.edited.wave, page.original.wave[::-1], atol=1e-6)
    for layer in layers:
        page.layer_select.value = layer
        kind = page.kinds[layer]
        a, b = page.analysis_a.acts[layer], page.analysis_b.acts[layer]
        diff = _difference(page)
        if kind == "freq_time":
            ch = page.channel_select.value
            np.testing.assert_allclose(diff, b[:, :, ch] - a[:, :, ch], rtol=1e-5, atol=1e-6)
        elif kind == "vector":
            np.testing.assert_allclose(diff, b - a, rtol=1e-5, atol=1e-6)
            assert page.listen_button.disabled and page.channel_select.disabled
        else:
            assert diff.shape == (a.shape[1], a.shape[0])
            np.testing.assert_allclose(diff, (b - a).T, rtol=1e-5, atol=1e-6)
            figs = [pane.object for pane in page.maps.objects]
            np.testing.assert_array_equal(_image(figs[0]), a.T)
            np.testing.assert_array_equal(_image(figs[1]), b.T)
        assert np.max(np.abs(diff)) > 1e-3 * max(np.max(np.abs(a)), 1e-6), layer
    page.layer_select.value = next(k for k, v in page.kinds.items() if v != "vector")
    page.listen_button.clicks += 1
    players = page.diff_view.objects[1].objects
    assert [p.name for p in players] == ["original", "edited"]
    assert all(p.object.shape == (n,) and p.sample_rate == sr for p in players)
    assert not np.allclose(players[0].object, players[1].object)


def test_frequency_ticks_sit_between_row_centres():
    from viz.picture import frequency_ticks

    # Rows 100 Hz apart from 0 Hz: f Hz is at row f / 100, drawn at f / 100 + 0.5; 62.5 Hz
    # (row 1.125) is within one row of 0 Hz's tick and left out.
    ticks = frequency_ticks(np.arange(20) * 100.0)
    assert ticks == {0.5: "0", 1.75: "125", 3.0: "250", 5.5: "500", 10.5: "1k"}
    with pytest.raises(ValueError, match="increasing"):
        frequency_ticks(np.array([100.0, 50.0]))
