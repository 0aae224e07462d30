"""``hearsight experiment classifiers``: trains the reference classifiers, writes their JSON.

Twelve FSDD recordings (digits 0 and 1, speakers george and jackson, takes 0, 5 and 10) give
known split sizes: FSDD's own split puts take 0 in test, 5 in valid, 10 in train (4 clips
each); leaving jackson out tests on his 6 clips, validates on george's take 0 (2) and trains on
george's takes 5 and 10 (4). One epoch each (two trainings: 30 s on the shared CPU at load 2,
140 s at load 7 beside a full training; mostly compiling); the accuracies are checked against
the checkpoint's own test accuracy (``models.train.evaluate``, a separate code path).
"""

import json

import pytest

from cli.main import main
from experiments.classifiers import parse_runs

DIGITS, SPEAKERS, TAKES = (0, 1), ("george", "jackson"), (0, 5, 10)


@pytest.fixture()
def few_fsdd(tmp_path, fsdd_dir):
    """Twelve FSDD recordings linked into a folder of their own (never copied)."""
    folder = tmp_path / "fsdd"
    folder.mkdir()
    for d in DIGITS:
        for s in SPEAKERS:
            for t in TAKES:
                name = f"{d}_{s}_{t}.wav"
                (folder / name).symlink_to(fsdd_dir / name)
    return folder


def check_fold(fold: dict, sizes: dict, test_speakers: list[str]) -> None:
    assert fold["split_sizes"] == sizes and fold["epochs_run"] == 1 == fold["best_epoch"]
    for split, n in sizes.items():
        acc = fold["accuracy"][split]
        assert acc["n"] == n and 0.0 <= acc["accuracy"] <= 1.0
        per = acc["per_speaker"]
        assert sum(p["n"] for p in per.values()) == n
        # the overall accuracy is the clip-weighted mean of the speakers'
        assert sum(p["accuracy"] * p["n"] for p in per.values()) / n == pytest.approx(
            acc["accuracy"])
        # accuracies are counts of clips: a multiple of 1/n
        assert acc["accuracy"] * n == pytest.approx(round(acc["accuracy"] * n))
    assert sorted(fold["accuracy"]["test"]["per_speaker"]) == test_speakers
    assert fold["accuracy"]["test"]["accuracy"] == pytest.approx(fold["checkpoint_test_accuracy"])
    assert fold["config"]["arch"] == "ddevis_cnn" and fold["config"]["epochs"] == 1
    assert len(fold["loadavg"]["before"]) == 3 and fold["train_seconds"] > 0


@pytest.mark.slow  # two trainings (30-49 s, 140 s under load); synth:small below is the fast one
def test_fsdd_and_leave_one_speaker_out_write_their_json(few_fsdd, tmp_path, capsys):
    out, models = tmp_path / "out", tmp_path / "models"
    code = main(["experiment", "classifiers", "--runs", "fsdd,fsdd-loso", "--fsdd",
                 str(few_fsdd), "--speakers", "jackson", "--epochs", "1", "--seed", "3",
                 "--models", str(models), "--out", str(out), "--json"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["fsdd-loso.json", "fsdd.json"]
    plain = json.loads((out / "fsdd.json").read_text())
    assert plain["complete"] and plain["arch"] == "ddevis_cnn" and plain["seed"] == 3
    assert plain["epochs"] == 1 and plain["corpus"] == f"fsdd:{few_fsdd}"
    assert plain["machine"]["cpus"] >= 1 and plain["wall_seconds"] > 0
    [fold] = plain["folds"]
    check_fold(fold, {"train": 4, "valid": 4, "test": 4}, ["george", "jackson"])
    assert plain["summary"] == {"test_accuracy": fold["accuracy"]["test"]["accuracy"]}

    loso = json.loads((out / "fsdd-loso.json").read_text())
    assert loso["complete"] and loso["leave_one_speaker_out"]
    [fold] = loso["folds"]  # --speakers jackson: his fold only
    assert fold["holdout_speaker"] == "jackson" and loso["settings"]["speakers"] == "jackson"
    check_fold(fold, {"train": 4, "valid": 2, "test": 6}, ["jackson"])
    assert sorted(fold["accuracy"]["train"]["per_speaker"]) == ["george"]
    acc = fold["accuracy"]["test"]["accuracy"]
    assert loso["summary"] == {"test_accuracy_by_holdout_speaker": {"jackson": acc},
                               "mean_test_accuracy": acc}
    # --models keeps each checkpoint
    assert (models / "fsdd" / "metadata.json").is_file()
    assert (models / "fsdd-loso" / "jackson" / "metadata.json").is_file()
    printed = json.loads(capsys.readouterr().out)
    assert printed["fsdd-loso"]["summary"] == loso["summary"]


def test_synth_large_warp_is_also_scored_on_the_other_corpus(tmp_path):
    # both corpus options name synth:small, so the extra score is of the same 4 test clips
    out = tmp_path / "out"
    code = main(["experiment", "classifiers", "--runs", "synth-large-warp", "--synth",
                 "synth:small", "--synth-large", "synth:small", "--epochs", "1", "--out",
                 str(out)])
    assert code == 0
    result = json.loads((out / "synth-large-warp.json").read_text())
    [fold] = result["folds"]
    assert fold["config"]["arch"] == "soomro_cnn" and fold["config"]["freq_warp"] == 0.2
    assert fold["split_sizes"] == {"train": 16, "valid": 4, "test": 4}  # 4 words x 1 voice
    test = fold["accuracy"]["test"]
    assert fold["also_test"] == {"corpus": "synth:small", **test}
    assert result["summary"] == {"test_accuracy": test["accuracy"],
                                 "also_test_corpus": "synth:small",
                                 "also_test_accuracy": test["accuracy"]}
    assert 0.0 <= test["accuracy"] <= 1.0 and len(test["per_speaker"]) == 1


def test_fsdd_runs_need_the_recordings_folder(tmp_path, capsys):
    code = main(["experiment", "classifiers", "--runs", "synth,fsdd", "--out",
                 str(tmp_path / "out")])
    assert code == 2
    assert "need --fsdd PATH" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any folder or training


def test_unknown_holdout_speaker_is_refused(few_fsdd, tmp_path, capsys):
    code = main(["experiment", "classifiers", "--runs", "fsdd-loso", "--fsdd", str(few_fsdd),
                 "--speakers", "lucas", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "['lucas'] not in" in capsys.readouterr().err
    assert not (tmp_path / "out" / "fsdd-loso.json").exists()


def test_run_names_are_checked():
    assert parse_runs("all") == ("fsdd", "fsdd-loso", "synth", "synth-warp",
                                 "synth-large-warp")
    assert parse_runs(" synth-warp, fsdd ") == ("synth-warp", "fsdd")
    with pytest.raises(ValueError, match="unknown \\['fsd'\\]"):
        parse_runs("fsd,synth")
