"""Small things a user saw (issue 21, item 7), each with a known answer: the projection-quality
table names its metrics in full and fits its column; a bad edit chain's message names the
file; downloads are named after the clip and its edits; "Open in Inspect" leaves the sidebar's
picker on the item that is open; the page's design links no web font and marks the selected
radio button."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from data.corpora import Item
from data.features import FeatureParams
from serve.config import Limits


# -- (c) the projection-quality table -------------------------------------------------------
LAYERS = ("conv1", "conv2", "conv3", "conv4", "dense1", "logits")  # the default model's
METRICS = {"procrustes_distance": 0.41234, "distance_correlation": 0.8, "mutual_information": 1.5,
           "trustworthiness": 0.91, "continuity": 0.88, "knn_preservation": 0.3, "n": 250}


def _layouts():
    from serve.pages.embeddings_layouts import Layouts

    return Layouts(LAYERS, np.zeros((len(LAYERS), 3, 2), np.float32), (False,) * len(LAYERS),
                   pd.DataFrame({"item_id": ["a", "b", "c"]}),
                   {n: dict(METRICS) for n in LAYERS})


def _table_width_px(df: pd.DataFrame, char_px: float = 6.5, pad_px: float = 12.0) -> float:
    # Panel's DataFrame pane: 12 px text (~6.5 px a character), 0.5 em padding each side; a
    # header with spaces wraps, so a column is as wide as its longest word or cell. Checked in
    # headless Chromium with Panel's dataframe.css: the narrowest rendering of the new table is
    # 425 px (this estimate: 448), of the old one 828 px (estimate 763).
    widths = []
    for col in df.columns:
        words = max(len(w) for w in str(col).split())
        cells = max(len(str(v)) for v in df[col]) if len(df) else 0
        widths.append(max(words, cells) * char_px + pad_px)
    return sum(widths)


def test_quality_table_names_every_metric_in_full_and_fits_its_column():
    from serve.pages import embeddings_layouts as EL

    table = EL.quality_table(_layouts())
    assert list(table.columns) == ["metric", *LAYERS]
    assert list(table["metric"]) == ["trustworthiness", "continuity", "k-NN preservation",
                                     "distance correlation", "mutual information (nats)",
                                     "Procrustes distance"]
    assert table.loc[table["metric"] == "Procrustes distance", "conv1"].item() == 0.412
    assert _table_width_px(table) <= 480  # the page's right column is 480 px wide
    assert _table_width_px(EL.quality_frame(_layouts())) > 480  # the old layout did not fit


def test_quality_table_without_metrics_is_empty_not_an_error():
    from serve.pages import embeddings_layouts as EL

    lay = _layouts()
    empty = EL.Layouts(lay.layers, lay.xy, lay.reflected, lay.meta, {})
    table = EL.quality_table(empty)
    assert list(table.columns) == ["metric", *LAYERS] and len(table) == 0


# -- (e) a bad chain's message names the file -------------------------------------------------
def test_a_bad_chain_file_is_named_in_the_message():
    from data.edits import chain_from_json

    with pytest.raises(ValueError, match=r"^my-chain\.json: edit chain is not valid JSON"):
        chain_from_json("{oops", source="uploads/my-chain.json")
    with pytest.raises(ValueError, match=r"^c\.json: edit 2: "):
        chain_from_json(json.dumps([{"op": "reverse", "params": {}}, {"op": "nope"}]),
                        source="c.json")
    assert chain_from_json('[{"op": "reverse", "params": {}}]', source="ok.json") == [
        {"op": "reverse", "params": {}}]
    with pytest.raises(ValueError, match=r"^edit chain is not valid JSON"):  # no source given
        chain_from_json("{oops")


# -- (h) downloads named after the clip and its edits -----------------------------------------
def test_download_names_carry_the_clip_and_the_edits():
    from serve.pages.compare_parts import download_name

    chain = [{"op": "reverse", "params": {}}, {"op": "gain", "params": {"db": 6.0}}]
    assert download_name("three_theo_0.wav", chain) == "three_theo_0_reverse_gain-db+6.wav"
    assert download_name("three_theo_0", chain, ".chain.json") == (
        "three_theo_0_reverse_gain-db+6.chain.json")
    assert download_name("seven (en-us)", []) == "seven-en-us_unedited.wav"
    assert download_name("../../etc/pass wd?.WAV", []) == "etc-pass-wd_unedited.wav"
    long = download_name("x", [{"op": "slice", "params": {"start_s": 0.1, "end_s": 0.5}}] * 30)
    assert len(long) <= 120 and long.endswith("_and-27-more.wav"), long


# -- (g) "Open in Inspect" updates the sidebar's picker ---------------------------------------
PARAMS = FeatureParams(sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16,
                       n_frames=13)


class _Predictor:
    labels, arch, params, input_kind = ["yes", "no"], "fake", PARAMS, "features"
    metadata = {"arch": "fake", "labels": ["yes", "no"], "corpus": "dir:/toy"}


class _Shared:
    def __init__(self, items):
        self.predictor, self.limits, self._items = _Predictor(), Limits(), items

    def corpus_items(self):
        return self._items


@pytest.fixture
def corpus(tmp_path):
    t = np.arange(100) / 1000.0
    items = []
    for i, (label, speaker) in enumerate([("yes", "ann"), ("no", "bob"), ("no", "ann"),
                                          ("yes", "bob")]):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, (0.5 * np.sin(2 * np.pi * (50 + 30 * i) * t)).astype(np.float32), 1000)
        items.append(Item(f"toy/c{i}", str(path), label, speaker, "test"))
    return items


def test_open_in_inspect_leaves_the_sidebar_picker_on_the_opened_item(corpus):
    from serve.pages.utterance_list import UtteranceList
    from serve.session import Session

    session = Session(_Shared(corpus))
    session.sidebar()
    audio_in = session.audio_in
    audio_in.item.value = corpus[0]  # the user had picked c0 in the sidebar
    assert session.clip.name == "c0"
    shown = []
    session.tab_switcher = shown.append
    utterances = UtteranceList(session, lambda: corpus)
    assert utterances.play("toy/c2")
    assert utterances.open_in_inspect()
    assert session.clip.name == "c2" and session.clip.source == "corpus" and shown == ["Inspect"]
    assert audio_in.item.value == corpus[2]  # the picker shows what is open, not c0
    assert (audio_in.label.value, audio_in.speaker.value) == ("no", "ann")
    np.testing.assert_allclose(session.clip.wave[:100] / np.max(np.abs(session.clip.wave)),
                               sf.read(corpus[2].path)[0] / np.max(np.abs(sf.read(corpus[2].path)[0])),
                               atol=1e-4)


def test_open_in_inspect_of_an_item_the_sidebar_lacks_loads_it_directly(corpus, tmp_path):
    from serve.pages.utterance_list import UtteranceList
    from serve.session import Session

    session = Session(_Shared(corpus[:2]))  # the sidebar's corpus lacks c2, c3
    session.sidebar()
    utterances = UtteranceList(session, lambda: corpus)
    assert utterances.play("toy/c3") and utterances.open_in_inspect()
    assert session.clip.name == "c3" and session.audio_in.item.value in corpus[:2]


# -- (f), (i) the design: no web font, a visible selected button ------------------------------
def test_design_links_no_web_font_and_fills_the_selected_button():
    from serve.design import ACCENT, SELECTED_BUTTON_CSS, HearsightDesign, template_style

    resources = json.dumps(HearsightDesign._resources)
    assert "fonts.googleapis" not in resources and HearsightDesign._resources["font"] == {}
    style = template_style()
    assert style["design"] is HearsightDesign and style["font_url"] == ""
    assert "Open Sans" not in style["font"] and "sans-serif" in style["font"]
    assert ".bk-btn-group .bk-btn.bk-active" in SELECTED_BUTTON_CSS
    assert f"background-color: {ACCENT}" in SELECTED_BUTTON_CSS
