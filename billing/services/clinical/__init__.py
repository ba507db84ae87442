"""What clinical staff record for the clinic's documents to insurers: patients' billing
profiles (date of birth, address, payer class)."""
