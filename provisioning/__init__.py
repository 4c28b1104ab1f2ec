"""Graph client, token providers, directory cache, domain services, jobs, tasks and commands."""
