"""Small pieces shared by every package: the name registry and the user-facing error type."""
from common.errors import UserError
from common.registry import Registry

__all__ = ["Registry", "UserError"]
