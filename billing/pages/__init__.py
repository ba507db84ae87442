"""Server-rendered pages for people (patients now, finance staff later)."""
