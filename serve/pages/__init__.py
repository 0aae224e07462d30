"""Pages of the app; each module builds one tab from the shared predictor and the session."""

from __future__ import annotations


def build_pages(shared):
    """The whole page of one session: header, sidebar (audio in), tabs."""
    import panel as pn

    from serve.pages.compare import ComparePage
    from serve.pages.embeddings import EmbeddingsPage
    from serve.pages.explain import ExplainPage
    from serve.pages.inspect import InspectPage
    from serve.pages.maximise import MaximisePage
    from serve.pages.strips import StripsPage
    from serve.session import Session

    session = Session(shared)
    classes = [("Inspect", InspectPage), ("Edit & compare", ComparePage),
               ("Explain", ExplainPage), ("Maximise", MaximisePage), ("Strips", StripsPage),
               ("Embeddings", EmbeddingsPage)]
    pages = []
    for name, cls in classes:
        with session.tab(name):
            pages.append((name, cls(session)))
    session.activate(pages[0][0])
    tabs = pn.Tabs(*[(name, page.view()) for name, page in pages], dynamic=False,
                   sizing_mode="stretch_width")
    names = [name for name, _ in pages]
    tabs.param.watch(lambda event: session.activate(names[event.new]), "active")
    session.tab_switcher = lambda name: setattr(tabs, "active", names.index(name))
    template = pn.template.FastListTemplate(
        title="hearsight", sidebar=[session.sidebar()], main=[tabs],
        header_background="#1f2937", accent_base_color="#0e7490", sidebar_width=320)
    return template
