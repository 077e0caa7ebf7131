"""Seed studies: the documents trialwatch starts from, and their links to registry records.

``model`` (the file format), ``files`` (reading and writing ``seeds/*.toml``), ``extract``
(raw document text → draft seed, pure), ``link`` (candidate registrations: search in every
registry and ranking), ``evidence`` (the ranking, pure), ``related`` (the seed's own
registration told apart from related ones, pure), ``phases`` (every registry's phase words as
codes, pure), ``compare`` (publication vs registry discrepancies, pure) and ``service`` (what
the ``trialwatch seeds`` commands call).
"""
