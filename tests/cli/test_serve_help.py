"""``hearsight serve --help`` explains every option (issue 21, item 7: ``--port`` and
``--allow-websocket-origin`` were listed with no text)."""

from __future__ import annotations

import argparse

from cli.main import build_parser


def _serve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_every_serve_option_has_help_text():
    missing = [a.option_strings[0] for a in _serve_parser()._actions
               if a.option_strings and not (a.help or "").strip()]
    assert missing == []


def test_port_and_origin_help_say_what_they_take(capsys):
    parser = _serve_parser()
    helps = {a.dest: a.help for a in parser._actions}
    assert "TCP port" in helps["port"] and "5006" in helps["port"]
    assert "origin" in helps["allow_websocket_origin"]
    parser.print_help()
    assert "--allow-websocket-origin HOST:PORT" in capsys.readouterr().out
