"""The booking after the quote: attendance, cancellations, fees, re-quotes."""
