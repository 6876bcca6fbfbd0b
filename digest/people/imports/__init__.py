"""Importing a list from another tool: one module per tool behind one small interface.

==============  ================================================================
``source.py``   the interface: a source yields each row as a ``Row`` (address,
                name, status, consent and evidence) or a ``Refused`` line
``writer.py``   the one writer: keys, duplicates, suppressions, batches, events
``generic.py``  a CSV of our own columns (``digest subscribers import FILE``)
==============  ================================================================

The package imports nothing itself, so loading one of its modules loads only
what that module needs.
"""
