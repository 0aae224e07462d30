"""The sidebar's "About the model" says what the model learnt from and how well it hears real voices."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from models.fit import DEFAULT_RECIPE, DEFAULT_RECIPE_REAL, RECIPE_R4, is_default_recipe
from serve.model_card import model_card

ROOT = Path(__file__).resolve().parents[2]


def _meta(config, **extra):
    return {"arch": "soomro_cnn", "labels": [f"w{i}" for i in range(35)], "corpus": "synth",
            "config": config, "metrics": {"test": {"accuracy": 0.8628, "n": 350}}, **extra}


def test_the_default_model_says_synthetic_voices_and_its_measured_real_accuracy():
    card = model_card(_meta(asdict(DEFAULT_RECIPE)))
    assert "soomro_cnn · 35 classes" in card
    assert "synthetic speech (eSpeak NG voices)" in card
    assert "86.3% top-1 (350 clips)" in card
    assert "Real voices:</b> 46.2% top-1 zero-shot" in card and "default-recipe.json" in card


def test_the_default_figure_is_the_one_its_evidence_file_measured_for_this_recipe():
    evidence = json.loads((ROOT / DEFAULT_RECIPE_REAL["file"]).read_text())
    assert is_default_recipe(evidence["recipe"])  # measured on a model of today's recipe
    assert evidence["real"]["n"] == 2500 and evidence["real"]["split"] == "all"
    assert DEFAULT_RECIPE_REAL["top1"] == round(evidence["real"]["top1"], 4)


def test_another_recipe_or_seed_is_not_credited_with_the_default_figure():
    for config in (asdict(RECIPE_R4), asdict(replace(DEFAULT_RECIPE, seed=1))):
        card = model_card(_meta(config))
        assert "46.2%" not in card and "hearsight experiment accuracy" in card


def test_a_recorded_measurement_is_shown_and_a_foreign_model_says_what_is_unknown():
    real = {"top1": 0.61, "what": "my recordings", "file": "runs/acc.json"}
    card = model_card(_meta({"arch": "ddevis_cnn"}, measured={"real": real}))
    assert "61.0% top-1 zero-shot on my recordings" in card
    foreign = model_card({"arch": "<b>hf</b>", "labels": ["a", "b"], "corpus": ""})
    assert "&lt;b&gt;hf&lt;/b&gt; · 2 classes" in foreign  # escaped, never markup
    assert "not recorded (trained outside hearsight)" in foreign
    assert "Held-out" not in foreign and "hearsight experiment accuracy" in foreign
