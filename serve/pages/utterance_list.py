"""The Embeddings page's list of selected utterances: a table, a player for the clicked row
and an "Open in Inspect" button that hands the file to the session."""

from __future__ import annotations

import numpy as np
import pandas as pd


class UtteranceList:
    """The selected utterances: a table (first ``max_rows``), a player for the clicked row and
    an "Open in Inspect" button that hands the file to the session.

    Args:
      session: has ``load_bytes(data, name, source=)`` and ``error(message)``.
      items_fn: ``items_fn() -> items`` (``id``, ``path``, ``label``, ``speaker``), read once.
    """

    COLUMNS = ["item_id", "label", "speaker", "prediction", "correct"]

    def __init__(self, session, items_fn, *, max_rows: int = 2000):
        import panel as pn

        self.session, self._items_fn, self.max_rows = session, items_fn, max_rows
        self._by_id = None
        self.current_item = None
        self.table = pn.widgets.Tabulator(None, disabled=True, selectable=1, show_index=False,
                                          height=300, pagination="local", page_size=50,
                                          css_classes=["hs-emb-table"])
        self.table.param.watch(self._on_row, "selection")
        self.note = pn.pane.Markdown("Box- or lasso-select points to list them.",
                                     css_classes=["hs-emb-table-note"])
        self.audio = pn.pane.Audio(None, name="utterance", visible=False,
                                   css_classes=["hs-emb-audio"])
        self.playing = pn.pane.Markdown("", css_classes=["hs-emb-playing"])
        self.open_button = pn.widgets.Button(name="Open in Inspect", disabled=True,
                                             css_classes=["hs-emb-open"])
        self.open_button.on_click(lambda _: self.open_in_inspect())

    def show(self, meta: pd.DataFrame, rows: np.ndarray, *, total: int | None = None) -> None:
        """List ``meta``'s ``rows`` (categoricals as strings, first ``max_rows``); ``total``:
        how many are selected in all, when ``rows`` are only the first of them."""
        cols = [c for c in self.COLUMNS if c in meta]
        shown = meta.iloc[rows[:self.max_rows]][cols].reset_index(drop=True)
        for c in shown.columns:
            if isinstance(shown[c].dtype, pd.CategoricalDtype):
                shown[c] = shown[c].astype(str)
        self.table.selection = []
        self.table.value = shown
        total = rows.size if total is None else int(total)
        listed = min(rows.size, self.max_rows)
        more = f" (first {listed:,} listed)" if total > listed else ""
        self.note.object = f"{total:,} selected{more}; click a row to play it"

    def _on_row(self, event) -> None:
        if event.new and self.table.value is not None:
            self.play(str(self.table.value.iloc[event.new[0]]["item_id"]))

    def play(self, item_id: str) -> bool:
        """Load ``item_id``'s audio file into the player and enable "Open in Inspect"."""
        from pathlib import Path

        if self._by_id is None:
            self._by_id = {it.id: it for it in self._items_fn()}
        item = self._by_id.get(item_id)
        if item is None or not Path(item.path).is_file():
            self.session.error(f"no audio file for {item_id!r} (its corpus is not available to "
                               "this server); open it from its folder instead")
            return False
        self.current_item = item
        self.audio.object = Path(item.path).read_bytes()
        self.audio.visible, self.open_button.disabled = True, False
        self.playing.object = f"Playing **{item.id}** ({item.label}, speaker {item.speaker or '?'})"
        return True

    def open_in_inspect(self) -> bool:
        """Hand the current utterance's file to the session and bring the Inspect tab up.

        When the sidebar's corpus holds the utterance, it is opened through the sidebar's
        picker (label, speaker and item set to it), so the picker shows what is open instead
        of the item picked before; otherwise its file is loaded directly."""
        from pathlib import Path

        item = self.current_item
        if item is None:
            return False
        before = self.session.clip
        if self._pick_in_sidebar(item.id):
            ok = self.session.clip is not before
        else:
            ok = self.session.load_bytes(Path(item.path).read_bytes(), item.id, source="corpus")
        if ok:
            self.session.show("Inspect")
        return ok

    def _pick_in_sidebar(self, item_id: str) -> bool:
        """Select ``item_id`` in the sidebar's corpus picker, which loads it; False when the
        sidebar has no such item (another corpus, or no sidebar)."""
        audio_in = getattr(self.session, "audio_in", None)
        if audio_in is None:
            return False
        match = next((it for it in self.session.shared.corpus_items() if it.id == item_id), None)
        if match is None:
            return False
        # Narrow the picker to the item's label and speaker (each refreshes the item options
        # without loading anything), then choose it: choosing an item loads it.
        audio_in.label.value = match.label if match.label in audio_in.label.options else "(any)"
        speaker = match.speaker or "(any)"
        audio_in.speaker.value = speaker if speaker in audio_in.speaker.options else "(any)"
        if match not in audio_in.item.options.values():
            return False
        if audio_in.item.value == match:  # the refresh preselected it: load it as "Load item"
            audio_in.pick.clicks += 1
        else:
            audio_in.item.value = match
        return True

    def view(self):
        import panel as pn

        return pn.Column(self.note, self.table, self.playing, self.audio, self.open_button,
                         sizing_mode="stretch_width")
