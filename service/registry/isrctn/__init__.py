"""ISRCTN (isrctn.com): the registry's keyless XML query API, its records normalised.

``fields`` (what the service knows of ISRCTN: ids, field paths, status words), ``xml`` (the
API's ``<allTrials>`` answer, parsed safely and split into one ``<fullTrial>`` per record),
``normalise`` (a fetched record → ``Snapshot``; the status is computed for the day it was
fetched, as the registry computes it) and ``client`` (``fetch`` and the ``lastEdited GE``
change signal).
"""
