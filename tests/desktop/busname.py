"""A session-bus client that owns a well-known name and drops off the bus when the first
method call reaches it: what a desktop app looks like to the bus in the moment it quits
(it still owns its name, but its next caller gets an error instead of an answer).

Plain D-Bus wire protocol over the bus's Unix socket (AUTH EXTERNAL, Hello,
RequestName), so the test needs no D-Bus binding. Only what that needs is marshalled:
little-endian method calls with string arguments and a uint32.
"""

import os
import socket
import struct
import threading


def _pad(buf, n):
    buf.extend(b"\0" * ((-len(buf)) % n))


def _string(buf, s, sig=False):
    data = s.encode()
    if sig:
        buf.extend(struct.pack("<B", len(data)))
    else:
        _pad(buf, 4)
        buf.extend(struct.pack("<I", len(data)))
    buf.extend(data + b"\0")


def _method_call(serial, dest, path, iface, member, body_sig="", body=b""):
    # Built from the message's first byte, so every alignment is an absolute offset.
    msg = bytearray(16)
    fields = [(1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest)]
    if body_sig:
        fields.append((8, "g", body_sig))
    for code, typ, value in fields:
        _pad(msg, 8)
        msg.extend(struct.pack("<B", code))
        _string(msg, typ, sig=True)
        _string(msg, value, sig=(typ == "g"))
    fields_len = len(msg) - 16
    msg[0:16] = b"l\x01\x00\x01" + struct.pack("<III", len(body), serial, fields_len)
    _pad(msg, 8)
    return bytes(msg) + body


def _read_message(sock, buf):
    """One whole message from `sock` (with `buf` holding bytes already read): its type and
    the bytes left over."""
    while True:
        if len(buf) >= 16:
            body_len, _serial, fields_len = struct.unpack("<III", buf[4:16])
            head_len = 16 + fields_len + ((-(16 + fields_len)) % 8)
            total = head_len + body_len
            if len(buf) >= total:
                return buf[1], buf[total:]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the bus closed the connection")
        buf += chunk


def _connect():
    addr = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    for part in addr.split(";"):
        kind, _, rest = part.partition(":")
        if kind != "unix":
            continue
        opts = dict(kv.split("=", 1) for kv in rest.split(","))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if "path" in opts:
            sock.connect(opts["path"])
        elif "abstract" in opts:
            sock.connect("\0" + opts["abstract"])
        else:
            continue
        return sock
    raise RuntimeError(f"no unix address in DBUS_SESSION_BUS_ADDRESS={addr!r}")


class DyingOwner:
    """Owns `name` on the session bus until the first method call arrives for it, then
    closes its connection without answering (the bus answers the caller with an error and
    releases the name)."""

    def __init__(self, name):
        self.sock = _connect()
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            line += self.sock.recv(1)
        if not line.startswith(b"OK"):
            raise RuntimeError(f"the bus refused authentication: {line!r}")
        self.sock.sendall(b"BEGIN\r\n")
        self.sock.sendall(_method_call(1, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "Hello"))
        body = bytearray()
        _string(body, name)
        _pad(body, 4)
        body.extend(struct.pack("<I", 4))  # DBUS_NAME_FLAG_DO_NOT_QUEUE
        self.sock.sendall(_method_call(2, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "RequestName", "su", bytes(body)))
        self.called = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        buf = b""
        try:
            while True:
                kind, buf = _read_message(self.sock, buf)
                if kind == 1:  # a method call: whoever it is, the owner is gone
                    self.called.set()
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            self.sock.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
