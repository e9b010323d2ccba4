"""Cases: tickets from intake to the client's revisit call."""
