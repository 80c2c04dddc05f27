"""Attribution of flows to devices and users (see docs/attribution.md).

Bindings (IP -> MAC / host name / user over a time interval) come from the
wire (DHCP, Kerberos), from files (Zeek logs, lease files, Windows logon
events, identity feeds) and are answered per flow or finding by
:class:`IdentityStore`.
"""

from sensor.identity.config import IdentityFile, IdentitySettings, from_toml
from sensor.identity.model import Attribution, Binding, norm_ip, norm_mac, user_key
from sensor.identity.pseudonymize import Pseudonymizer, pseudonymize_finding_dict
from sensor.identity.readers import FORMATS, IdentityLoad, load_identity
from sensor.identity.store import IdentityStore, principal_identity

__all__ = [
    "FORMATS", "Attribution", "Binding", "IdentityFile", "IdentityLoad", "IdentitySettings",
    "IdentityStore", "Pseudonymizer", "from_toml", "load_identity", "norm_ip",
    "norm_mac", "principal_identity", "pseudonymize_finding_dict", "user_key",
]
