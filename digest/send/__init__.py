"""Sending an issue: the engine, the deliveries ledger, run claims and the senders.

=================  ==========================================================
``sender.py``      the one small interface every sender implements
``configured.py``  ``open_sender``: the sender ``[sender] kind`` names
``engine.py``      freeze the audience, deliver, resume, retry, report
``deliveries.py``  the deliveries ledger: one row per (issue, subscriber)
``claims.py``      run claims: which process sends which scheduled issue
``outbox.py`` ...  the senders (outbox, null, smtp, http and its providers)
=================  ==========================================================

The package imports nothing itself, so loading one of its modules loads only
what that module needs.
"""
