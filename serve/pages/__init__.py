"""Pages of the app; each module builds one tab from the shared predictor and the session
(:mod:`serve.pages.tabs` assembles them into a session's page)."""
