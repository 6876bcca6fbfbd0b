"""People: subscribers, from signing up to being erased.

===============  ===============================================================
``record.py``    the ``Subscriber`` record: finding, listing, the write transaction
``changes.py``   the lifecycle: sign up, confirm, unsubscribe, resubscribe, add,
                 suppress (the transitions of :mod:`digest.lifecycle`)
``audience.py``  who is mailed (streamed, counted, frozen by a send); the counts
``rights.py``    a person's data: shown, exported (GDPR Art. 15/20), erased (17)
``imports/``     lists from other tools: one source per tool, one writer
===============  ===============================================================

Consent events and their hash chain are :mod:`digest.consent`; the bounce
policy is :mod:`digest.bounces`; the list as a table and its full export is
:mod:`digest.roster`. The package imports nothing itself, so loading one of
its modules loads only what that module needs.
"""
