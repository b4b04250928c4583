"""Where the WhatsGate API is called: the HTTP client, and the parser of its answers."""
