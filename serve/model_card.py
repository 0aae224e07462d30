"""The sidebar's "About the model": what the model was trained on and how well it hears.

A person who records their own voice should know before they do what to expect: the default
model learnt from synthetic eSpeak NG voices, and its accuracy on real voices was measured for
its recipe (zero-shot on the five FSDD speakers), not on this machine. Another model says what
its checkpoint records and, where nothing was measured, how to measure it.
"""

from __future__ import annotations

from serve.text import esc

CORPUS_WORDS = {"synth": "synthetic speech (eSpeak NG voices)",
                "synth:large": "synthetic speech (eSpeak NG voices, 4 takes)",
                "synth:small": "synthetic speech (eSpeak NG voices, 4 words)"}
MEASURE_HINT = ("not measured for this model — <code>hearsight experiment accuracy --model DIR "
                "--real fsdd:PATH</code> measures it")


def _corpus_words(spec: str) -> str:
    if not spec:
        return "not recorded (trained outside hearsight)"
    kind = spec.split(":", 1)[0]
    return CORPUS_WORDS.get(spec) or {"fsdd": "FSDD recordings",
                                      "speech-commands": "Speech Commands recordings",
                                      "folder": "a folder of recordings"}.get(kind, spec)


def model_card(metadata: dict) -> str:
    """HTML lines for ``metadata`` (a checkpoint's ``metadata.json`` or a foreign model's)."""
    from models.fit import DEFAULT_RECIPE_REAL, is_default_recipe

    labels = metadata.get("labels") or []
    lines = [f"<b>Model:</b> {esc(str(metadata.get('arch', 'model')))} · {len(labels)} classes"]
    lines.append(f"<b>Trained on:</b> {esc(_corpus_words(str(metadata.get('corpus') or '')))}")
    test = (metadata.get("metrics") or {}).get("test") or {}
    if isinstance(test.get("accuracy"), (int, float)):
        lines.append(f"<b>Held-out clips of that corpus:</b> {test['accuracy']:.1%} top-1"
                     + (f" ({int(test['n'])} clips)" if test.get("n") else ""))
    real = (metadata.get("measured") or {}).get("real")
    if is_default_recipe(metadata.get("config")):
        real = DEFAULT_RECIPE_REAL
    if real:
        lines.append(f"<b>Real voices:</b> {real['top1']:.1%} top-1 zero-shot on "
                     f"{esc(real['what'])} (measured for this recipe: {esc(real['file'])})")
    else:
        lines.append(f"<b>Real voices:</b> {MEASURE_HINT}")
    return "<br>".join(lines)
