"""Where the networks are defined: ``variants/`` (one file per CBAM variant) and the hosts."""

from .hosts import HOST_DEFAULTS, HostDefaults, create_model, host_defaults, list_hosts
from .variants import create_cbam, list_variants

__all__ = ["HOST_DEFAULTS", "HostDefaults", "create_cbam", "create_model", "host_defaults", "list_hosts", "list_variants"]
