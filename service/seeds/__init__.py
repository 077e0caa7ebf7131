"""Seed studies: the documents trialwatch starts from, and their links to registry records.

``model`` (the file format), ``files`` (reading and writing ``seeds/*.toml``), ``extract``
(raw document text → draft seed, pure), ``link`` (candidate registrations: search and
ranking), ``compare`` (publication vs registry discrepancies, pure) and ``service`` (what the
``trialwatch seeds`` commands call).
"""
