"""What other systems hear: the event feed, webhooks to client systems, emails to
patients, and the scheduled jobs that keep them (and Stripe) in step."""
