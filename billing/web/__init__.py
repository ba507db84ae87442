"""What speaks HTTP: the API, the pages for people, auth, limits, errors as problem+json."""
