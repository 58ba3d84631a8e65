"""Anonymisation, pseudonymisation, k-anonymity and PII redaction, usable as a library.

The modules of this package import no database code: ``operators``, ``records``, ``generalize``,
``anonymity``, ``detect``, ``redact`` and ``logs`` work on values, rows and text. Only ``service``
and ``api`` (re-identification, which is audited) touch the ledger.
"""
