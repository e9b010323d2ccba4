"""People who use the hotline's API: agents, supervisors, institution staff and admins."""
