"""The first-run default model follows a fixed, seeded recipe: no wall-clock budget, and the
same seed gives the same weights."""

from dataclasses import replace

import jax
import numpy as np
import pytest
from flax import nnx

import cli.inputs as inputs
import models.fit as fit_module
from models.fit import DEFAULT_RECIPE, FitConfig, fit


def test_recipe_has_no_time_budget_and_fixed_epochs_and_seed():
    assert DEFAULT_RECIPE.time_budget_s is None
    assert DEFAULT_RECIPE.arch == inputs.DEFAULT_ARCH
    assert DEFAULT_RECIPE.epochs >= 1 and DEFAULT_RECIPE.seed == 0
    assert DEFAULT_RECIPE.patience > DEFAULT_RECIPE.epochs  # every epoch is trained


def test_first_run_trains_the_recipe_whatever_budget_a_caller_passes(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARSIGHT_HOME", str(tmp_path))
    seen = {}
    monkeypatch.setattr(inputs, "open_corpus_args", lambda spec: type(
        "C", (), {"items": (), "spec": spec})())
    monkeypatch.setattr(fit_module, "fit", lambda corpus, out, config, **kw: seen.update(
        corpus=corpus.spec, out=out, config=config))
    out = inputs.ensure_default_model(budget_s=90.0, log=lambda m: None)
    assert seen["config"] == DEFAULT_RECIPE and seen["config"].time_budget_s is None
    assert seen["corpus"] == "synth" and seen["out"] == out
    assert out.parent == tmp_path / "models"


def test_a_cached_model_of_another_recipe_is_retrained(monkeypatch, tmp_path):
    # The cache folder carries RECIPE_VERSION; the recorded config is checked too, so a recipe
    # changed without a version bump never serves the old model.
    import json
    from dataclasses import asdict

    monkeypatch.setenv("HEARSIGHT_HOME", str(tmp_path))
    out = inputs.default_model_dir()
    assert out.name == f"default-soomro_cnn-synth-r{inputs.RECIPE_VERSION}"
    trained = []
    monkeypatch.setattr(inputs, "open_corpus_args", lambda spec: type(
        "C", (), {"items": (), "spec": spec})())
    monkeypatch.setattr(fit_module, "fit", lambda corpus, o, config, **kw: trained.append(o))
    import models.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "validate_metadata", lambda meta, d: None)
    (out / "state").mkdir(parents=True)
    (out / "state" / "w").write_text("x")
    lines = []
    today = json.loads(json.dumps(asdict(DEFAULT_RECIPE)))
    older = {k: v for k, v in today.items() if k != "time_budget_s"}  # a field added later,
    # at its default: the same recipe
    for config, retrained in ((asdict(replace(DEFAULT_RECIPE, epochs=3)), True),
                              (today, False), (older, False)):
        (out / "metadata.json").write_text(json.dumps({"config": config}))
        trained.clear()
        assert inputs.ensure_default_model(log=lines.append) == out
        assert bool(trained) is retrained
    assert "trained by another recipe" in lines[0]


@pytest.fixture()
def tiny_corpus(tmp_path, fsdd_dir):
    """Twelve FSDD clips of two digits: takes 0 test, 5 valid, 10-13 train."""
    from data.corpora import open_corpus

    folder = tmp_path / "fsdd"
    folder.mkdir()
    for digit in (0, 1):
        for take in (0, 5, 10, 11, 12, 13):
            name = f"{digit}_george_{take}.wav"
            (folder / name).symlink_to(fsdd_dir / name)
    return open_corpus(f"fsdd:{folder}", progress=False)


def _weights(out):
    from models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(out)
    return jax.tree.leaves(nnx.state(model, nnx.Param))


def test_same_seed_gives_the_same_weights_and_the_recipe_is_recorded(tiny_corpus, tmp_path):
    # Two epochs of the recipe's own augmentation (band limits, warps, tails, gates): every
    # draw comes from the seed, so a second run repeats the first bit for bit.
    recipe = replace(DEFAULT_RECIPE, epochs=2, batch_size=4)
    metas = {name: fit(tiny_corpus, tmp_path / name, config, progress=False, log=lambda m: None)
             for name, config in (("a", recipe), ("b", recipe), ("c", replace(recipe, seed=1)))}
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert FitConfig(**{k: tuple(v) if isinstance(v, list) else v
                        for k, v in metas["a"]["config"].items()}) == recipe
    assert len(metas["a"]["metrics"]["history"]) == 2  # no budget cut it short


def test_weight_averaged_batch_norm_models_get_statistics_of_their_own(tiny_corpus, tmp_path):
    """The mean of several epochs' weights is a new model: its batch-norm statistics must be
    recalibrated on the training inputs after averaging (before, it kept the last epoch's)."""
    from data.dataset import load_split
    from models.checkpoint import load_checkpoint
    from models.fit import feature_params_for
    from models.train import recalibrate_batch_norm

    config = FitConfig(arch="ddevis_cnn", epochs=2, batch_size=4, average_last=2, seed=0)
    fit(tiny_corpus, tmp_path / "m", config, progress=False, log=lambda m: None)
    model, _ = load_checkpoint(tmp_path / "m")
    saved = [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.BatchStat))]
    x = load_split(tiny_corpus, "train", feature_params_for("ddevis_cnn"), progress=False).x
    assert recalibrate_batch_norm(model, np.asarray(x, np.float32)) == 4
    again = [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.BatchStat))]
    assert len(saved) == 8
    for a, b in zip(saved, again):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("argv, seed", [([], 0), (["--seed", "2"], 2)])
def test_train_default_recipe_takes_a_seed(monkeypatch, tmp_path, argv, seed):
    """`hearsight train --default-recipe --seed N`: the recipe at another seed (how its seed
    spread is measured); without --seed, the recipe itself."""
    import cli.train as train_cli
    from cli.main import main

    seen = {}
    monkeypatch.setattr(train_cli, "open_corpus_args", lambda spec, args: spec)
    monkeypatch.setattr(fit_module, "fit", lambda corpus, out, config, **kw: seen.update(
        config=config) or {})
    main(["train", "--corpus", "synth", "--default-recipe", "--arch", "ddevis_cnn",
          "--epochs", "3", "--out", str(tmp_path / "m"), *argv])
    assert seen["config"] == replace(DEFAULT_RECIPE, seed=seed)
