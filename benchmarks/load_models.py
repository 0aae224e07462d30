"""Bokeh model classes for ``benchmarks/load.py``'s browser-less clients: Panel's custom
models imported so a client can deserialise a served page, and stubs for model types the
server makes at run time."""

from __future__ import annotations

def register_models() -> None:
    """Import the Bokeh model classes the page uses, so the client can deserialise them."""
    import importlib
    import pkgutil

    import panel.models  # Panel's custom Bokeh models; some modules load lazily, import all

    for mod in pkgutil.iter_modules(panel.models.__path__):
        try:
            importlib.import_module(f"panel.models.{mod.name}")
        except Exception:  # optional extras (e.g. vtk) may be missing; unused models only
            pass
    _lenient_types()


def _lenient_types() -> None:
    """Let the client stand in a stub for model types made at run time on the server (e.g.
    Panel's ``ReactiveHTML`` components such as the recorder); the load test never touches them."""
    from bokeh.core.serialization import Deserializer
    from bokeh.model import DataModel  # a Model; fits where a DataModel is expected, too

    original, stubs = Deserializer._resolve_type, {}
    if getattr(original, "_hearsight_lenient", False):
        return

    def set_from_json(self, name, value, *, setter=None):
        self.__dict__.setdefault("_raw", {})[name] = value

    def resolve(self, type_name):
        try:
            return original(self, type_name)
        except Exception:
            if type_name not in stubs:
                stubs[type_name] = type(f"Stub{len(stubs)}", (DataModel,), {
                    "__view_model__": type_name, "__view_module__": "hearsight_load_stub",
                    "__qualified_model__": f"hearsight_load_stub.{type_name}",
                    "set_from_json": set_from_json})
            return stubs[type_name]

    def decode_ref(self, obj):
        # A reference the client cannot resolve (e.g. a model inside a stub's raw JSON) would
        # kill the client's message loop; a detached placeholder keeps the session following
        # the texts it reads.
        try:
            return original_ref(self, obj)
        except Exception:
            return DataModel()

    import logging

    # Patches to a placeholder's attributes are expected; do not log each one.
    logging.getLogger("bokeh.core.has_props").setLevel(logging.ERROR)
    from bokeh.core.has_props import HasProps

    original_set = HasProps.set_from_json

    def set_leniently(self, name, value, *, setter=None):
        # A value holding a placeholder fails validation; skipping that one property keeps
        # the rest of the patch (and the session) alive.
        try:
            original_set(self, name, value, setter=setter)
        except ValueError:
            pass

    HasProps.set_from_json = set_leniently

    from bokeh.client.session import ClientSession

    original_patch = ClientSession._handle_patch

    def handle_patch(self, message):
        # A patch the client cannot apply (e.g. Panel's messages without bokeh "events")
        # must not end the session's message loop; the texts the benchmark reads come in
        # later patches.
        try:
            original_patch(self, message)
        except Exception:
            pass

    ClientSession._handle_patch = handle_patch
    original_ref = Deserializer._decode_ref
    resolve._hearsight_lenient = True
    Deserializer._resolve_type = resolve
    Deserializer._decode_ref = decode_ref
