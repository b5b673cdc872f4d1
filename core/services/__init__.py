"""Every write to the core domain. Keyword-only functions that check the caller's rights,
own the transaction and leave an audit record.

Each function documents the domain errors it raises (see `core.errors`); the API turns them
into 4xx answers.
"""
