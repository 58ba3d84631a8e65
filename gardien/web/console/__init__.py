"""The admin console, mounted at /console: see docs/console.md."""
