"""The EU Clinical Trials Information System (CTIS, euclinicaltrials.eu): one record per EU CT
number, read from the portal's public JSON API (``/retrieve`` for a record, ``/search`` sorted
by ``lastUpdated`` as the change signal). CTIS keeps no versions a client can ask for, so
trialwatch's own snapshots are the history. ``fields`` (pure facts), ``normalise`` (record →
snapshot, pure) and ``client`` (the HTTP side)."""
