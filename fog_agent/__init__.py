"""fog_agent: DMO-SAPO trained inside fog's learned environments (see the project README)."""
