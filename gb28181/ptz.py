"""GB/T 28181 PTZ commands (Annex A.3, the 8-byte ``PTZCmd`` of DeviceControl). Pure.

Byte 1 is 0xA5; byte 2 the version (high nibble, 0) and a check nibble (the sum of byte 1's
nibbles and byte 2's high nibble, mod 16); byte 3 the address (low 8 bits); byte 4 the
instruction; bytes 5 and 6 the pan and tilt speeds (0-255) or the preset number (byte 6);
byte 7 the zoom speed (high nibble, 0-15) and the address's high 4 bits; byte 8 the sum of
bytes 1-7 mod 256. Written as 16 upper-case hex digits.
"""

from __future__ import annotations

RIGHT, LEFT, DOWN, UP, ZOOM_IN, ZOOM_OUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
SET_PRESET, CALL_PRESET, DELETE_PRESET = 0x81, 0x82, 0x83


def command(instruction: int, data1: int = 0, data2: int = 0, data3: int = 0,
            address: int = 1) -> str:  # fmt: skip
    """One PTZCmd: ``data1``/``data2`` bytes 5 and 6, ``data3`` the high nibble of byte 7."""
    for name, value, top in (("instruction", instruction, 0xFF), ("data1", data1, 0xFF),
                             ("data2", data2, 0xFF), ("data3", data3, 0x0F),
                             ("address", address, 0xFFF)):  # fmt: skip
        if not 0 <= value <= top:
            raise ValueError(f"PTZ {name} {value} is out of range 0..{top}")
    b1 = 0xA5
    b2 = ((b1 >> 4) + (b1 & 0x0F) + 0) % 16  # version 0 in the high nibble
    out = [b1, b2, address & 0xFF, instruction, data1, data2, (data3 << 4) | (address >> 8)]
    out.append(sum(out) % 256)
    return "".join(f"{b:02X}" for b in out)


def move(pan: float, tilt: float, zoom: float) -> str:
    """A continuous move: each of ``pan`` (right +), ``tilt`` (up +), ``zoom`` (in +) in
    -1..1, its magnitude the speed; all zero: stop."""
    for name, value in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"PTZ {name} {value} is out of range -1..1")
    instruction = 0
    if pan:
        instruction |= RIGHT if pan > 0 else LEFT
    if tilt:
        instruction |= UP if tilt > 0 else DOWN
    if zoom:
        instruction |= ZOOM_IN if zoom > 0 else ZOOM_OUT
    return command(instruction, round(abs(pan) * 255), round(abs(tilt) * 255),
                   round(abs(zoom) * 15))  # fmt: skip


def stop() -> str:
    return command(0)


def preset(instruction: int, number: int) -> str:
    """Set, call or delete preset ``number`` (1-255)."""
    if not 1 <= number <= 255:
        raise ValueError(f"GB/T 28181 preset numbers are 1-255, not {number}")
    return command(instruction, 0, number)
