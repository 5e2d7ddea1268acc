"""The encrypted contact vault: party numbers sealed with AES-256-GCM under versioned keys."""
