"""longform: durable long LLM generations by response continuation."""
