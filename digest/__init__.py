"""kulturdigest: digest e-mails of municipal culture news."""

__version__ = "0.1.0"
