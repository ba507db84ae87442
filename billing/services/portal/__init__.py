"""The patient portal: signing in, and what a signed-in patient sees and does."""
