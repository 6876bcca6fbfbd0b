"""The Friday loop: what is due, sending it once, and the scheduler that waits for it.

=============  ==============================================================
``view.py``    ``digest schedule``: the slot that matters now and its issue
``due.py``     ``digest send --due``: the steps of one run, from cron
``loop.py``    ``digest scheduler``: run the due steps, sleep, repeat
``recipes.py`` cron and systemd recipes
=============  ==============================================================

Slot arithmetic is :mod:`digest.slots`; run claims are :mod:`digest.send.claims`.
The package imports nothing itself.
"""
