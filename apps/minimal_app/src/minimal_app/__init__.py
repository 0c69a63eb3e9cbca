"""minimal_app: the smallest app that fulfils the agilab-panel contract."""
