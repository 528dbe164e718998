#!/usr/bin/env python3
"""A memport consumer for Linux in plain Python (standard library only),
written from docs/PROTOCOL.md alone.

    python3 examples/python-consumer.py <channel-name> [--messages N] [--json]

Connects to a memport listener, receives N messages (default 1), validates
each region's fd exactly as the protocol requires, maps it read-only, prints
its size, mode and first bytes, and acknowledges it.
"""
import argparse
import ctypes
import fcntl
import json
import mmap
import os
import pwd
import socket
import stat
import struct
import sys

MAGIC = b"MPRT"
VERSION = 1
WELCOME, REJECT, MESSAGE, ACK, NACK = 1, 2, 3, 4, 5
HEADER = struct.Struct("<4sBBHII")  # magic, version, type, region_count, seq, data_length
DESCRIPTOR = struct.Struct("<QII")  # size, flags, handle
MAX_REGIONS = 64
MAX_DATA = 128 * 1024
MAX_FRAME = HEADER.size + DESCRIPTOR.size * MAX_REGIONS + MAX_DATA
READ_ONLY = 1
TMPFS_MAGIC = 0x01021994

# fcntl sealing constants (linux/fcntl.h); Python exposes some of them since 3.8/3.9.
F_ADD_SEALS = getattr(fcntl, "F_ADD_SEALS", 1033)
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE = 0x2, 0x4, 0x8, 0x10


class ProtocolError(Exception):
    pass


def is_private_dir(path):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0


def plant_proof_home():
    home = os.environ.get("HOME", "")
    if not home.startswith("/"):
        try:
            home = pwd.getpwuid(os.geteuid()).pw_dir
        except KeyError:
            return None
    try:
        st = os.stat(home)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o022 == 0:
        return home
    return None


def socket_path(name):
    """The directory rule of docs/PROTOCOL.md ("Path"), first that applies."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and is_private_dir(runtime):
        return check_dir(os.path.join(runtime, "memport")), name
    run_user = "/run/user/%d" % os.geteuid()
    if is_private_dir(run_user):
        return check_dir(os.path.join(run_user, "memport")), name
    home = plant_proof_home()
    if home is not None:
        return check_dir(os.path.join(home, ".cache", "memport")), name
    return check_dir("/tmp/memport-%d" % os.geteuid()), name


def name_lock_holder(lock_path):
    """PID holding the name's POSIX record lock (docs/PROTOCOL.md, "Ownership
    of a name"), or 0 when nobody does."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
        layout = "hhqqi"
        probe = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, holder = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    finally:
        os.close(fd)
    return 0 if l_type == fcntl.F_UNLCK else holder


def check_dir(path):
    st = os.lstat(path)  # FileNotFoundError: no listener for this user
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError("%s is not a private directory owned by this user" % path)
    return path


_libc = ctypes.CDLL(None, use_errno=True)


def statfs_type(fd):
    """f_type from fstatfs(2): os.statvfs does not expose it. f_type is the
    first field of struct statfs, a C long on Linux."""
    buf = ctypes.create_string_buffer(256)  # larger than struct statfs on every Linux ABI
    if _libc.fstatfs(fd, buf) != 0:
        raise OSError(ctypes.get_errno(), "fstatfs failed")
    return struct.unpack_from("l", buf)[0]


def validate(fd, size, read_only):
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ProtocolError("fd is not a regular file")
    if statfs_type(fd) != TMPFS_MAGIC:
        raise ProtocolError("fd is not a memfd")
    seals = fcntl.fcntl(fd, F_GET_SEALS)
    if seals & (F_SEAL_SHRINK | F_SEAL_GROW) != (F_SEAL_SHRINK | F_SEAL_GROW):
        raise ProtocolError("memfd can still change size")
    if st.st_size < size:
        raise ProtocolError("memfd smaller than declared")
    write_sealed = seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if read_only and not write_sealed:
        raise ProtocolError("declared read-only but not write-sealed")
    if not read_only and (flags & os.O_ACCMODE != os.O_RDWR or write_sealed):
        raise ProtocolError("declared writable but not writable")


def frame(kind, seq, data=b""):
    return HEADER.pack(MAGIC, VERSION, kind, 0, seq, len(data)) + data


def receive_frame(sock):
    fd_space = socket.CMSG_SPACE(MAX_REGIONS * 4)
    data, ancdata, flags, _ = sock.recvmsg(MAX_FRAME + 1, fd_space, socket.MSG_CMSG_CLOEXEC)
    fds = []
    foreign = False
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack("%di" % (len(payload) // 4), payload[: len(payload) - len(payload) % 4]))
        else:
            foreign = True
    try:
        if not data and not fds:
            raise EOFError("the listener closed the connection")
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError("truncated frame")
        if foreign:
            raise ProtocolError("unexpected ancillary data")
        if len(data) < HEADER.size:
            raise ProtocolError("short frame")
        magic, version, kind, count, seq, data_length = HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION or kind not in (WELCOME, REJECT, MESSAGE, ACK, NACK):
            raise ProtocolError("bad header")
        if count > MAX_REGIONS or data_length > MAX_DATA:
            raise ProtocolError("cap exceeded")
        if len(data) != HEADER.size + DESCRIPTOR.size * count + data_length:
            raise ProtocolError("length mismatch")
        if kind != MESSAGE and count:
            raise ProtocolError("regions on a non-message frame")
        if len(fds) != count:
            raise ProtocolError("fd count does not match region_count")
        regions = []
        for i in range(count):
            size, region_flags, handle = DESCRIPTOR.unpack_from(data, HEADER.size + DESCRIPTOR.size * i)
            if not 1 <= size <= 1 << 47 or region_flags & ~READ_ONLY or handle != i:
                raise ProtocolError("bad descriptor")
            validate(fds[i], size, bool(region_flags & READ_ONLY))
            regions.append((fds[i], size, bool(region_flags & READ_ONLY)))
        payload = data[len(data) - data_length :] if data_length else None
        return kind, seq, regions, payload
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--messages", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line per message")
    args = parser.parse_args()

    directory, name = socket_path(args.name)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    # Names are case-insensitive: the path uses the name in ASCII lowercase.
    lower = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in name)
    sock.connect(os.path.join(directory, lower + ".sock"))
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid not in (os.geteuid(), 0):
        raise PermissionError("the listener runs as another user")
    owner = name_lock_holder(os.path.join(directory, lower + ".lock"))
    if owner not in (0, pid):
        raise PermissionError("'%s' is owned by process %d but served by process %d" % (name, owner, pid))

    kind, _, _, payload = receive_frame(sock)
    if kind == REJECT:
        sys.exit("rejected: %s" % (payload or b"").decode("utf-8", "replace"))
    if kind != WELCOME:
        raise ProtocolError("expected WELCOME")

    for _ in range(args.messages):
        kind, seq, regions, payload = receive_frame(sock)
        if kind != MESSAGE:
            raise ProtocolError("expected MESSAGE, got type %d" % kind)
        data = json.loads(payload.decode("utf-8")) if payload is not None else None
        report = {"listener_pid": pid, "seq": seq, "data": data, "regions": []}
        for fd, size, read_only in regions:
            with mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as view:
                report["regions"].append({"size": size, "readOnly": read_only, "head": list(view[:8])})
            os.close(fd)
        sock.sendmsg([frame(ACK, seq)], [], socket.MSG_NOSIGNAL)
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            for r in report["regions"]:
                print("region: %d bytes, %s, first bytes %s" % (r["size"], "read-only" if r["readOnly"] else "writable", r["head"]))
            print("data: %s" % json.dumps(data), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
