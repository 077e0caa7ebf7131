"""One sync cycle as phases that pass values, composed by ``Monitor.sync``:

- ``settle``: which stored records are settled unchanged without a fetch (ClinicalTrials.gov:
  its data timestamp ``quiet``, its changed-since ``listing`` or the ``probe``; the registries
  without history: their change ``signal``), and what is left to fetch;
- ``fetch``: pages of raw records, ids the registry does not have, failed requests;
- ``store``: a page normalised, diffed and written together (record by record should that
  fail): its verdicts, changes, problems and the records whose findings are to review;
- ``review``: the findings of what was stored, and of what is due.

``context`` holds what the phases share and only read (``Cycle``); ``tally`` the one count
of the cycle (a verdict per study and the problems found), from which the report's counts
are derived at the end; ``result`` the report itself (``SyncReport``).
"""
