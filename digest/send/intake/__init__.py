"""Bounce intake: the sources of bounce, complaint and unsubscribe reports.

One small module per source, all ending in :func:`digest.bounces.apply` (the
policy):

==================  ================================================================
``refusals``        an SMTP 5xx or an API's per-message refusal during the send
``mailbox``         `digest bounces fetch`: reports in an IMAP mailbox
``files``           `digest bounces ingest`: a message, a Maildir, an mbox or stdin
``webhooks/``       one module per provider's signed event webhook
==================  ================================================================

``reports`` reads what a report message says (``layouts`` knows the mail systems
whose reports need knowledge of their own); ``reader`` finds the reader it is about
and makes the policy's reports. The package imports nothing itself.
"""
