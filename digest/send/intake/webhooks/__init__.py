"""Provider webhooks: ``receive`` verifies a request and applies the policy to its
events; one module per provider (postmark, sendgrid, mailgun, resend, ses) knows its
signature and payloads; ``common`` holds what they share. Imports nothing itself.
"""
