"""`hearsight train --out` never destroys a folder it did not make."""

from cli.main import main


def test_train_refuses_a_folder_with_someone_elses_files_before_training(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.txt").write_text("four years of work")
    code = main(["train", "--corpus", "synth:small", "--out", str(out), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not a hearsight checkpoint (it holds thesis.txt); refusing to replace it" in err
    assert "synthesising" not in err and "epoch" not in err  # refused before any work
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert (out / "thesis.txt").read_text() == "four years of work"


def test_predict_on_a_system_folder_never_suggests_training_into_it(capsys):
    assert main(["predict", "--model", "/etc", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert "--out /etc" not in err and "--out <new folder>" in err


def test_train_help_lists_the_decoder_prior(capsys):
    import pytest

    from cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "spectrogram_ae" in capsys.readouterr().out
