"""Twilio webhooks: signed voice, SMS and status callbacks over the router and the vault."""
