"""Models: the catalog of profiles, download, loading, the resident-model cache, tiny builders."""
