"""The EU Clinical Trials Register (EUCTR, clinicaltrialsregister.eu): one trial is every
country record of its EudraCT number, read from the register's text download (``text``),
folded into one snapshot (``normalise``), described for the rest of the service (``fields``)
and asked for politely (``client``, with the register's own TLS trust in ``tls``)."""
