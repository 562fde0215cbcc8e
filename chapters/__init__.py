"""The course chapters; each is a package runnable with `python -m chapters.<name>`."""
