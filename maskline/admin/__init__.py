"""The admin console: accounts, sessions, pages and the dual-control reveal."""
