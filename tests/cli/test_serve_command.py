"""``hearsight serve``: the command's own decisions before the server starts."""

from __future__ import annotations

import serve.app as app
from cli import serve as command
from cli.main import build_parser


def test_serve_starts_over_in_a_fresh_process_after_training(monkeypatch, tmp_path):
    # The default model was just trained here (JAX is running): forking that runtime would
    # hang the workers, so the command re-executes itself; with JAX idle it serves directly.
    calls = []
    monkeypatch.setattr(command, "ensure_default_model", lambda **kw: tmp_path)
    monkeypatch.setattr(command, "default_prior", lambda args, model_dir: None)
    monkeypatch.setattr(command, "restart_clean", lambda argv=None: calls.append("restart"))
    monkeypatch.setattr(app, "serve", lambda model_dir, **kw: calls.append(("serve", kw["procs"])))
    args = build_parser().parse_args(["serve", "--procs", "2"])
    for started in (True, False):
        monkeypatch.setattr(command, "jax_started", lambda: started)
        command.run(args)
    assert calls == ["restart", ("serve", 2), ("serve", 2)]
    calls.clear()
    monkeypatch.setattr(command, "jax_started", lambda: True)
    command.run(build_parser().parse_args(["serve"]))  # one process: never restarts
    assert calls == [("serve", 1)]


def test_the_default_model_is_served_with_its_decoder_prior(monkeypatch, tmp_path, capsys):
    # Only the default model gets its prior (trained once, cached) without asking; --no-prior
    # skips it, --model serves what it names, and a prior that cannot be made is reported.
    import models.prior as prior_module

    trained, served = [], []
    monkeypatch.setattr(command, "ensure_default_model", lambda **kw: tmp_path)
    monkeypatch.setattr(command, "jax_started", lambda: False)
    monkeypatch.setattr(prior_module, "ensure_default_prior",
                        lambda model_dir, **kw: trained.append(model_dir))
    monkeypatch.setattr(app, "serve", lambda model_dir, **kw: served.append((model_dir,
                                                                             kw["prior"])))
    parse = build_parser().parse_args
    command.run(parse(["serve"]))
    assert trained == [tmp_path]
    assert served[-1] == (tmp_path, str(prior_module.default_prior_dir(tmp_path)))
    command.run(parse(["serve", "--no-prior"]))
    assert served[-1] == (tmp_path, None) and len(trained) == 1
    other = tmp_path / "mine"
    command.run(parse(["serve", "--model", str(other)]))
    assert served[-1] == (other, None) and len(trained) == 1
    command.run(parse(["serve", "--model", str(other), "--prior", "/p"]))
    assert served[-1] == (other, "/p")

    def broken(model_dir, **kw):
        raise ValueError("no corpus recorded")

    monkeypatch.setattr(prior_module, "ensure_default_prior", broken)
    command.run(parse(["serve"]))
    assert served[-1] == (tmp_path, None)
    assert "serving without the decoder prior: no corpus recorded" in capsys.readouterr().err


def test_the_ignored_training_budget_option_is_gone():
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--default-budget", "90"])
