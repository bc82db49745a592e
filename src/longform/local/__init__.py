"""Run longform on a laptop: the real state machine under moto, handlers in-process."""
