"""Retention: policies, legal holds, purge / anonymise / archive runs, quotas (GDPR Art. 5(1)(e))."""
