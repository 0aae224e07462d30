"""Checkpoints: model state through orbax plus a validated ``metadata.json``.

Layout of a checkpoint folder::

    <directory>/state/          orbax (tensorstore) arrays of the model's Params, BatchStats, …
    <directory>/metadata.json   format_version, arch, arch_kwargs, labels, features, corpus,
                                split, metrics, versions, created (+ anything the caller adds)

A save is written to a hidden sibling folder and renamed into place, so an interrupted save
never looks complete. Loading validates ``metadata.json`` before anything is built, rebuilds
the model through :func:`models.registry.build_model` and checks every array's shape. No
pickle is involved anywhere (orbax stores plain arrays; metadata is JSON).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import uuid
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from data.features import FeatureParams
from models.architectures import variable_type, variable_value
from models.registry import build_model
from models.state_tree import flatten, nest, saved_variables, set_variable

FORMAT_VERSION = 1
KNOWN_FORMAT_VERSIONS = (1,)
_REQUIRED = {"format_version": int, "arch": str, "arch_kwargs": dict, "labels": list,
             "features": dict}
_OPTIONAL = {"split": dict, "metrics": dict, "versions": dict, "created": str}
_PACKAGES = {"jax": "jax", "flax": "flax", "optax": "optax", "orbax": "orbax-checkpoint",
             "numpy": "numpy", "hearsight": "hearsight"}


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, corrupt or does not fit its model."""


MAX_METADATA_BYTES = 1_000_000  # a checkpoint's metadata.json; more is not metadata
MAX_CLASSES = 10_000
MAX_INPUT_CELLS = 10_000_000  # freq x time of one input example
OWN_ENTRIES = {"metadata.json", "state", ".last", ".best"}  # what a checkpoint folder holds


def _remedy(directory: Path, arch: str = "<arch>") -> str:
    return f"retrain with: hearsight train --corpus <spec> --arch {arch} --out <new folder>"


def _fail(problem: str, directory: Path, arch: str = "<arch>") -> CheckpointError:
    return CheckpointError(f"checkpoint {directory}: {problem}; {_remedy(directory, arch)}")


def _versions() -> dict[str, str]:
    out = {}
    for key, dist in _PACKAGES.items():
        try:
            out[key] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, jnp.ndarray)):
        return np.asarray(obj).tolist()
    if isinstance(obj, FeatureParams):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def check_arch_name(arch: str, directory: Path | str = "<checkpoint>") -> None:
    """Refuse an ``arch`` that names the standard library or a builtin as its factory.

    A checkpoint may come from someone else; its ``arch`` is imported and called when loaded.
    Registered names and ``package.module:factory`` entry points of third-party or own
    packages pass; ``os:system``, ``subprocess:run``, ``builtins:eval`` and the like do not.
    """
    from models.registry import ARCHITECTURES

    if arch in ARCHITECTURES:
        return
    top = arch.partition(":")[0].split(".")[0]
    if ":" in arch and (top in sys.stdlib_module_names or top in sys.builtin_module_names
                        or top.startswith("_")):
        raise _fail(f"arch {arch!r} names a standard-library function, not a model factory "
                    "(refused: a checkpoint must not run arbitrary code)", Path(directory))


def validate_metadata(meta: Any, directory: Path | str = "<checkpoint>") -> FeatureParams:
    """Check a checkpoint's metadata; return its :class:`FeatureParams`.

    Raises:
      CheckpointError: a required key is missing or has the wrong type, the format version is
        unknown, labels are not a list of ``n_classes`` strings, or the features are invalid.
    """
    directory = Path(directory)
    if not isinstance(meta, dict):
        raise _fail("metadata.json must hold a JSON object", directory)
    arch = meta.get("arch") if isinstance(meta.get("arch"), str) else "<arch>"
    for key, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in meta and key in _REQUIRED:
            raise _fail(f"metadata.json lacks the required key {key!r}", directory, arch)
        if key in meta and (not isinstance(meta[key], typ) or isinstance(meta[key], bool)):
            raise _fail(f"metadata key {key!r} must be {typ.__name__}, got "
                        f"{type(meta[key]).__name__}", directory, arch)
    check_arch_name(meta["arch"], directory)
    if meta["format_version"] not in KNOWN_FORMAT_VERSIONS:
        raise _fail(f"unknown format_version {meta['format_version']} (this hearsight reads "
                    f"{list(KNOWN_FORMAT_VERSIONS)})", directory, arch)
    kw = meta["arch_kwargs"]
    n, shape = kw.get("n_classes"), kw.get("input_shape")
    if not (_int_in(n, 1, MAX_CLASSES) and isinstance(shape, list) and len(shape) == 2
            and all(_int_in(s, 1, MAX_INPUT_CELLS) for s in shape)
            and shape[0] * shape[1] <= MAX_INPUT_CELLS):
        raise _fail(f"arch_kwargs must hold n_classes (int in 1..{MAX_CLASSES}) and "
                    f"input_shape [freq, time] (ints, at most {MAX_INPUT_CELLS:,} cells), got "
                    f"{str(kw)[:120]}", directory, arch)
    labels = meta["labels"]
    if (len(labels) != n
            or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in labels)):
        raise _fail(f"labels must be a list of {n} strings (n_classes) of 1..200 characters, "
                    f"got {str(labels)[:120]}", directory, arch)
    try:
        return FeatureParams.from_dict(meta["features"])
    except (TypeError, ValueError) as e:
        raise _fail(f"invalid feature parameters ({e})", directory, arch) from e


def _complete_metadata(metadata: dict) -> dict:
    meta = {"format_version": FORMAT_VERSION, "corpus": None, "split": {}, "metrics": {}}
    meta.update(metadata)
    if isinstance(meta.get("features"), FeatureParams):
        meta["features"] = meta["features"].to_dict()
    kw = dict(meta.get("arch_kwargs") or {})
    if "input_shape" in kw:
        kw["input_shape"] = [int(s) for s in kw["input_shape"]]
    meta["arch_kwargs"] = kw
    meta["versions"] = _versions()
    meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # Round-trip through JSON so what is validated is exactly what will be read back.
    return json.loads(json.dumps(meta, default=_json_default))


def _int_in(value, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def check_replaceable(directory: str | Path) -> None:
    """Refuse to write a checkpoint over a folder hearsight did not make.

    ``directory`` may be missing, empty, or hearsight's own: nothing but :data:`OWN_ENTRIES`
    (a run in progress holds only ``.last``/``.best``), with a ``metadata.json`` that names an
    ``arch`` where there is one; anything else — ``/etc``, a folder with
    someone's thesis in it — raises :class:`CheckpointError` before any training or writing.
    """
    directory = Path(directory).absolute()
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is a file, not a checkpoint folder; choose a new "
                              "--out folder")
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        raise CheckpointError(f"{directory} cannot be read ({exc.strerror}); choose a new "
                              "--out folder") from exc
    if not entries:
        return
    foreign = [e for e in entries if e not in OWN_ENTRIES]
    meta_ok = True  # only .last/.best: a training run in progress writes those first
    if "metadata.json" in entries:
        try:
            meta_ok = isinstance(read_metadata(directory).get("arch"), str)
        except CheckpointError:
            meta_ok = False
    if foreign or not meta_ok:
        shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
        why = f"it holds {shown}" if foreign else "it has no valid metadata.json"
        raise CheckpointError(f"{directory} exists and is not a hearsight checkpoint ({why}); "
                              "refusing to replace it: choose a new or empty --out folder")


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Rename the finished ``tmp`` to ``directory``; an existing checkpoint there (checked
    by :func:`check_replaceable`) is renamed aside first and removed only afterwards."""
    if not directory.exists():
        os.rename(tmp, directory)
        return
    check_replaceable(directory)  # again: the folder may have changed while we trained
    old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex}"
    os.rename(directory, old)
    os.rename(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(directory: str | Path, model: nnx.Module, metadata: dict) -> Path:
    """Save ``model``'s state and ``metadata`` (see module docstring) into ``directory``.

    ``metadata`` needs at least ``arch``, ``arch_kwargs`` (``n_classes``, ``input_shape``),
    ``labels`` and ``features`` (dict or :class:`FeatureParams`); ``format_version``,
    ``versions`` and ``created`` (UTC ISO 8601) are filled in. Replaces an existing checkpoint
    (never another folder: see :func:`check_replaceable`) once the new one is complete.
    Returns the absolute checkpoint path.
    """
    directory = Path(directory).absolute()
    check_replaceable(directory)
    meta = _complete_metadata(metadata)
    validate_metadata(meta, directory)
    arrays = {p: np.asarray(variable_value(v))
              for p, v in saved_variables(nnx.state(model)).items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / "state", nest(arrays))
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        _swap_into_place(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_metadata(directory: Path) -> dict:
    path = directory / "metadata.json"
    if not path.is_file():
        raise _fail("metadata.json is missing (incomplete or foreign folder)", directory)
    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise _fail(f"metadata.json is {size:,} bytes, over the {MAX_METADATA_BYTES:,}-byte "
                    "limit (not checkpoint metadata)", directory)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(f"metadata.json is corrupt ({e})", directory) from e
    except RecursionError:
        raise _fail("metadata.json is nested too deeply (not checkpoint metadata)",
                    directory) from None


def _materialise_unsaved(state, wanted) -> None:
    """Give variables that are not saved (dropout RNG keys and counters) concrete values."""
    flat = nnx.to_flat_state(state) if hasattr(nnx, "to_flat_state") else state.flat_state()
    for i, (path, var) in enumerate(flat):
        if path in wanted or not isinstance(variable_value(var), jax.ShapeDtypeStruct):
            continue
        if isinstance(var, nnx.RngKey) or variable_type(var) is nnx.RngKey:
            set_variable(var, jax.random.key(i))
        else:
            abstract = variable_value(var)
            set_variable(var, jnp.zeros(abstract.shape, abstract.dtype))


def _restore_into(model: nnx.Module, state_dir: Path, directory: Path, arch: str) -> None:
    try:
        with ocp.StandardCheckpointer() as ckptr:
            restored = flatten(ckptr.restore(state_dir))
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
        raise _fail(f"model state is corrupt ({type(e).__name__}: {e})", directory, arch) from e
    state = nnx.state(model)
    wanted = saved_variables(state)
    missing, extra = sorted(set(wanted) - set(restored)), sorted(set(restored) - set(wanted))
    if missing or extra:
        raise _fail(f"saved state does not fit architecture {arch!r}: missing "
                    f"{['/'.join(p) for p in missing]}, unexpected "
                    f"{['/'.join(p) for p in extra]}", directory, arch)
    _materialise_unsaved(state, wanted)
    for path, var in wanted.items():
        old, new = tuple(variable_value(var).shape), np.shape(restored[path])
        if old != new:
            raise _fail(f"shape mismatch at {'/'.join(path)}: saved {new}, model expects "
                        f"{old}", directory, arch)
        set_variable(var, jnp.asarray(restored[path], dtype=variable_value(var).dtype))
    nnx.update(model, state)


def check_trusted_arch(arch: str, trusted_arch: str | None,
                       directory: Path | str = "<checkpoint>") -> None:
    """Refuse to import an entry point that only the checkpoint file names.

    Registered names are built from hearsight's own code. An entry point
    (``package.module:factory``) is imported and run, so it must also come from the operator:
    ``trusted_arch`` (``--arch`` on the command line) has to equal it.
    """
    from models.registry import ARCHITECTURES

    if arch in ARCHITECTURES or ":" not in arch or arch == trusted_arch:
        return
    raise CheckpointError(
        f"checkpoint {Path(directory)}: its arch {arch!r} is an entry point read from the "
        "checkpoint file, which alone is not trusted to name code to import; if you trust it, "
        f"pass --arch {arch} (trusted_arch={arch!r})")


def load_checkpoint(directory: str | Path, *,
                    trusted_arch: str | None = None) -> tuple[nnx.Module, dict]:
    """Load a checkpoint saved by :func:`save_checkpoint`.

    Args:
      directory: the checkpoint folder.
      trusted_arch: the entry point the operator vouches for (``--arch``); a checkpoint whose
        ``arch`` is an entry point other than this is refused before anything is imported.
        Registered architectures load without it.
    Returns:
      ``(model, metadata)``; the model is in eval mode.
    Raises:
      CheckpointError: missing folder, missing/corrupt/invalid metadata, unknown
        format_version, an untrusted entry point, missing/corrupt state, state that does not
        fit the architecture.
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise _fail("no such checkpoint folder", directory)
    meta = read_metadata(directory)
    validate_metadata(meta, directory)
    check_trusted_arch(meta["arch"], trusted_arch, directory)
    arch, kw = meta["arch"], meta["arch_kwargs"]
    state_dir = directory / "state"
    if not state_dir.is_dir():
        raise _fail("the model state folder 'state' is missing", directory, arch)
    try:
        # Build abstractly (shapes only): initialising weights that the checkpoint replaces
        # anyway compiled one XLA program per parameter and took ~10 s of every start.
        options = {k: v for k, v in kw.items() if k not in ("n_classes", "input_shape")}
        model = nnx.eval_shape(lambda: build_model(arch, n_classes=kw["n_classes"],
                                                   input_shape=kw["input_shape"],
                                                   options=options))
    except (ValueError, TypeError) as e:  # TypeError: a factory with the wrong signature
        raise _fail(f"cannot rebuild architecture {arch!r} ({e})", directory, arch) from e
    _restore_into(model, state_dir, directory, arch)
    model.eval()
    return model, meta
