"""The carrier simulator: plays Twilio against a running (or in-process) maskline."""
