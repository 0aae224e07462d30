"""``hearsight models inspect SPEC``: what hearsight sees of a model, without serving it.

``SPEC`` is ``hf:PATH`` (a local Hugging Face folder), ``torch:package.module:factory`` or
``onnx:FILE`` (see :func:`models.contract.load_model`). Loading a foreign model runs its code:
only inspect models you would run.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="inspect a model: input space, labels, layers, ops")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    i = msub.add_parser("inspect", help="what was detected in a model spec "
                                        "(hf:PATH | torch:package.module:factory | onnx:FILE)")
    i.add_argument("spec")
    i.add_argument("--json", action="store_true", help="print the description as JSON")


def run(args):
    from models.contract import describe, load_model

    info = describe(load_model(args.spec))
    if not args.json:
        space = info["input"]
        print(f"{info['spec']}: {space['kind']} in, {space['sample_rate']} Hz x "
              f"{space['duration_s']:g} s, input shape {tuple(space['shape'])}")
        print(f"{len(info['labels'])} classes: {', '.join(info['labels'][:12])}"
              + (" …" if len(info["labels"]) > 12 else ""))
        print(f"{info['parameters']:,} parameters; {len(info['layers'])} layers:")
        for layer in info["layers"]:
            print(f"  {layer['name']:>12s}  {layer['kind']:<9s} {tuple(layer['shape'])}")
        if info.get("ops"):
            print(f"{len(info['ops'])} operators lowered to JAX")
    return info
