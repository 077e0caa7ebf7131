"""trialwatch: watch clinical-trial registry records and alert when a trial changes."""

__version__ = "0.1.0"
