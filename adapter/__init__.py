"""cpims-adapter: the integration layer between Primero/CPIMS+ and the departments that serve
children, private by construction."""

from adapter._version import __version__

__all__ = ["__version__"]
