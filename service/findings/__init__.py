"""Transparency findings: rules over a record's versions (``rules``), on facts taken from
its raw records (``facts``)."""
