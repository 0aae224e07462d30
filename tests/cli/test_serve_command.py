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
