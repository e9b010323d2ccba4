"""The voice and SMS dialogues, on top of routing and tickets."""
