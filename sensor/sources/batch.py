"""The columnar packet batch that every packet source yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# libpcap LINKTYPE_* values we decode
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_C_HDLC = 104
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_NFLOG = 239
# DLT_RAW has platform-specific values 12 and 14 in old files
LINKTYPE_RAW_ALT = (12, 14)


@dataclass(slots=True)
class PacketBatch:
    """Packets as columns over one shared buffer.

    ``buf`` is a uint8 view of the bytes (an mmap of the file, or a
    decompressed chunk); packet ``i`` is ``buf[offsets[i] : offsets[i] + caplens[i]]``
    starting at its link-layer header.
    """

    buf: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    caplens: npt.NDArray[np.int32]
    origlens: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]  # ns since the Unix epoch, UTC
    linktypes: npt.NDArray[np.int32]  # per packet (pcapng interfaces differ)
    bytes_consumed: int  # input bytes read so far (for progress), at batch end

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def packet(self, i: int) -> bytes:
        o = int(self.offsets[i])
        return self.buf[o : o + int(self.caplens[i])].tobytes()


@dataclass(frozen=True, slots=True)
class Damage:
    """Where and why a capture stopped being readable."""

    path: str
    byte_offset: int  # offset in the (decompressed) capture stream
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: damaged capture at byte {self.byte_offset}: {self.reason}"
