"""Server-rendered pages: the admin console, and public pages."""
