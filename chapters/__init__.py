"""The course chapters; each is a package runnable with `python -m chapters.<name>`."""
import common  # noqa: F401  (process-wide settings that must precede `import paddle`; see common/__init__.py)
