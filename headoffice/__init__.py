"""Head-office tools: the admin CLI, and the local dev host that runs the cloud without Azure."""
