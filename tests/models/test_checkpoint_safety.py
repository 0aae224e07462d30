"""Checkpoints never destroy a folder they did not make, and distrust their metadata."""

import json

import pytest

from data.features import FeatureParams
from models.checkpoint import (CheckpointError, check_replaceable, load_checkpoint,
                               save_checkpoint, validate_metadata)
from models.registry import build_model

SHAPE = (16, 16)


def _metadata():
    return {"format_version": 1, "arch": "frame_mlp", "arch_kwargs": {"n_classes": 2, "input_shape": list(SHAPE)},
            "labels": ["a", "b"], "features": FeatureParams(kind="logmel", n_mels=16,
                                                            n_frames=16, n_fft=64,
                                                            hop_length=16).to_dict()}


@pytest.fixture(scope="module")
def model():
    return build_model("frame_mlp", n_classes=2, input_shape=SHAPE)


def test_a_folder_with_other_files_is_never_replaced(tmp_path, model):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.txt").write_text("four years of work")
    with pytest.raises(CheckpointError, match=r"not a hearsight checkpoint \(it holds "
                                              r"thesis.txt\); refusing to replace it"):
        save_checkpoint(out, model, _metadata())
    assert (out / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary left


def test_a_checkpoint_with_a_file_added_is_not_replaced_either(tmp_path, model):
    out = save_checkpoint(tmp_path / "ck", model, _metadata())
    (out / "notes.md").write_text("mine")
    with pytest.raises(CheckpointError, match="it holds notes.md"):
        save_checkpoint(out, model, _metadata())
    assert (out / "notes.md").is_file() and (out / "metadata.json").is_file()


def test_a_checkpoint_is_replaced_only_by_a_complete_one(tmp_path, model):
    out = save_checkpoint(tmp_path / "ck", model, _metadata())
    first = json.loads((out / "metadata.json").read_text())["created"]
    save_checkpoint(out, model, {**_metadata(), "labels": ["x", "y"]})
    _, meta = load_checkpoint(out)
    assert meta["labels"] == ["x", "y"] and "created" in meta and first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    check_replaceable(tmp_path / "missing")  # a new folder is fine
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file, not a checkpoint folder"):
        check_replaceable(tmp_path / "file")


def test_remedy_never_suggests_writing_over_the_folder(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert "--out <new folder>" in str(info.value)
    assert f"--out {tmp_path}" not in str(info.value)


@pytest.mark.parametrize("field,value,word", [
    ("duration_s", 1e7, "duration_s must be a number in"),
    ("n_mels", 1e8, "n_mels must be an integer in"),
    ("n_mels", 100_000_000, "n_mels must be an integer in"),
    ("n_fft", 2**31, "n_fft must be an integer in"),
    ("n_frames", 1.5, "n_frames must be an integer"),
    ("sample_rate", True, "sample_rate must be an integer"),
    ("floor", float("nan"), "floor must be a number"),
])
def test_absurd_feature_parameters_are_refused_before_allocation(field, value, word):
    meta = _metadata()
    meta["features"][field] = value
    with pytest.raises(CheckpointError, match=word):
        validate_metadata(meta)


def test_stft_rows_must_exist_in_the_fft():
    with pytest.raises(ValueError, match="n_freq 8000 exceeds the 33 bins of n_fft 64"):
        FeatureParams(kind="stft", n_fft=64, hop_length=16, n_freq=8000)


@pytest.mark.parametrize("kw,word", [
    ({"n_classes": 10**9, "input_shape": [16, 16]}, "n_classes"),
    ({"n_classes": 2, "input_shape": [10**6, 10**6]}, "input_shape"),
    ({"n_classes": 2, "input_shape": [16, True]}, "input_shape"),
])
def test_absurd_architecture_sizes_are_refused(kw, word):
    meta = {**_metadata(), "arch_kwargs": kw}
    with pytest.raises(CheckpointError, match=word):
        validate_metadata(meta)


def test_deeply_nested_or_huge_metadata_gets_a_message(tmp_path):
    (tmp_path / "metadata.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"pad": "x" * 2_000_000}))
    with pytest.raises(CheckpointError, match="over the 1,000,000-byte limit"):
        load_checkpoint(tmp_path)
