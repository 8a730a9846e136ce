"""Investigator search: an index of confirmed tracks (what the cameras saw).

``indexer`` turns each camera's tracked boxes into finished tracks (pure), ``colour``
names an object's dominant colour, ``store`` keeps the ``tracks`` table and searches
it, ``service`` is the ``tracks`` thread that ties them to frames, files and clips.
"""
