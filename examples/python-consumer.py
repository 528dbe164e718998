#!/usr/bin/env python3
"""A memport consumer for Linux in plain Python (standard library only),
written from docs/PROTOCOL.md alone.

    python3 examples/python-consumer.py <channel-name> [--messages N] [--json]
    python3 examples/python-consumer.py <channel-name> --stream [--json]

Connects to a memport listener, receives N messages (default 1), validates
each region's fd (and each notifier's eventfd) exactly as the protocol
requires, maps regions read-only, prints their size, mode and first bytes,
and acknowledges each message.

With --stream it receives one message carrying a stream reader (a queue-mode
stream: the writer did conn.send({ streams: [writer] })), then reads every
record in place as PROTOCOL.md section 6 says: it sleeps on its eventfd when
there is nothing to read, releases each record once read, wakes the writer
when the writer sleeps, and stops when the writer closes the stream or the
connection closes. It prints how many records and bytes it read and a SHA-256
over them (each record's length as a little-endian uint32, then its bytes).
"""
import argparse
import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import platform
import pwd
import select
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
# Descriptor flag bits (PROTOCOL.md section 2). NAMED is not accepted here
# (this peer does not opt in to named regions).
READ_ONLY, NAMED, NOTIFIER, STREAM_MEMBER = 1, 2, 4, 8
TMPFS_MAGIC = 0x01021994
ANON_INODE_FS_MAGIC = 0x09041934

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


def validate_notifier(fd):
    """PROTOCOL.md section 4, "Notifiers (flag bit 2)": an eventfd, counting
    (not semaphore mode, so notifications coalesce), open O_RDWR."""
    try:
        link = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        link = ""
    if statfs_type(fd) != ANON_INODE_FS_MAGIC or link != "anon_inode:[eventfd]":
        raise ProtocolError("notifier is not an eventfd but %s" % (link or "something else"))
    with open("/proc/self/fdinfo/%d" % fd) as info:
        fields = dict(line.split(":", 1) for line in info.read().splitlines() if ":" in line)
    if "eventfd-count" not in fields:
        raise ProtocolError("notifier has no eventfd state in /proc/self/fdinfo")
    if fields.get("eventfd-semaphore", "0").strip() != "0":
        raise ProtocolError("notifier eventfd is in semaphore mode: notifications would not coalesce")
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDWR:
        raise ProtocolError("notifier eventfd is not open for reading and writing")


def frame(kind, seq, data=b""):
    return HEADER.pack(MAGIC, VERSION, kind, 0, seq, len(data)) + data


class Frame:
    """A validated frame. Its handles belong to the caller (close() them)."""

    def __init__(self, kind, seq, payload):
        self.kind, self.seq, self.payload = kind, seq, payload
        self.regions = []  # (fd, size, read_only), plain regions in descriptor order
        self.notifiers = []  # eventfds, plain notifiers in descriptor order
        self.streams = []  # Stream parts, one per stream sent

    def fds(self):
        fds = [fd for fd, _, _ in self.regions] + self.notifiers
        for s in self.streams:
            fds += [s.data[0], s.control[0], s.wake, s.wake_writer]
        return fds

    def close(self):
        for fd in self.fds():
            os.close(fd)


class StreamParts:
    """What a stream reader is made of (PROTOCOL.md section 6, "Readers over
    connections"): the data region read-only and this reader's control region
    writable, the last regions of the frame, and its wake eventfd and the
    writer's, the last notifiers, all flagged STREAM_MEMBER."""

    def __init__(self, data, control, wake, wake_writer):
        self.data, self.control, self.wake, self.wake_writer = data, control, wake, wake_writer


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
        result = Frame(kind, seq, data[len(data) - data_length :] if data_length else None)
        stream_regions, stream_notifiers = [], []
        for i in range(count):
            size, handle_flags, handle = DESCRIPTOR.unpack_from(data, HEADER.size + DESCRIPTOR.size * i)
            if handle != i:
                raise ProtocolError("bad descriptor")
            if handle_flags & NOTIFIER:
                # A notifier: size 0 and flags exactly 4 (or 12 as a stream's member).
                if size != 0 or handle_flags not in (NOTIFIER, NOTIFIER | STREAM_MEMBER):
                    raise ProtocolError("bad notifier descriptor")
                if stream_notifiers and not handle_flags & STREAM_MEMBER:
                    raise ProtocolError("a plain notifier after a stream's: stream members come last")
                validate_notifier(fds[i])
                (stream_notifiers if handle_flags & STREAM_MEMBER else result.notifiers).append(fds[i])
            else:
                if not 1 <= size <= 1 << 47 or handle_flags & ~(READ_ONLY | STREAM_MEMBER):
                    raise ProtocolError("bad descriptor")
                if stream_regions and not handle_flags & STREAM_MEMBER:
                    raise ProtocolError("a plain region after a stream's: stream members come last")
                read_only = bool(handle_flags & READ_ONLY)
                validate(fds[i], size, read_only)
                (stream_regions if handle_flags & STREAM_MEMBER else result.regions).append((fds[i], size, read_only))
        # Per stream: two regions (data read-only, control writable) and two notifiers.
        if len(stream_regions) % 2 or len(stream_notifiers) != len(stream_regions):
            raise ProtocolError("a stream's regions and notifiers do not pair up")
        for k in range(len(stream_regions) // 2):
            data_region, control = stream_regions[2 * k], stream_regions[2 * k + 1]
            if not data_region[2] or control[2]:
                raise ProtocolError("a stream's data region must be read-only and its control region writable")
            result.streams.append(StreamParts(data_region[:2], control[:2], stream_notifiers[2 * k], stream_notifiers[2 * k + 1]))
        return result
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


# --- Streams (PROTOCOL.md section 6) -------------------------------------

DATA_MAGIC, CONTROL_MAGIC, STREAM_VERSION = 0x5453504D, 0x5253504D, 1
MODE_QUEUE, MODE_LATEST = 1, 2
# Word indexes (offset / 4) of the shared words.
W_WRITE_POS, W_STATE = 64 // 4, 72 // 4
C_READ_POS, C_HOLD, C_READER_SLEEPING, C_WRITER_SLEEPING, C_READER_STATE, C_WRITER_STATE = 4, 5, 6, 7, 8, 9
STATE_CLOSED = 1
TWO32 = 1 << 32


class StreamEnded(Exception):
    """The stream has no more records for this reader; str() says why."""


_fence = None


def fence():
    """A full memory barrier, callable from Python (made on first use).

    PROTOCOL.md section 6 asks for sequentially consistent 32-bit loads and
    stores on the shared words. An aligned 4-byte memoryview access is one
    plain load or store, but Python has no atomics or fences, and the wake-up
    rules need one: a side stores its "I am going to sleep" word, then loads
    the other side's progress, and the CPU may otherwise let the load pass
    the store (x86-64 does; arm64 reorders more). So this maps a page,
    writes the one instruction (x86-64 `mfence`, arm64 `dmb ish`) and `ret`
    into it, makes it read+execute only, and calls it through ctypes.
    """
    global _fence
    if _fence is not None:
        return _fence()
    code = {"x86_64": bytes.fromhex("0faef0c3"), "aarch64": bytes.fromhex("bf3b03d5c0035fd6")}.get(platform.machine())
    if code is None:
        raise RuntimeError("no memory fence for %s: this reader knows x86_64 and aarch64" % platform.machine())
    page = mmap.mmap(-1, mmap.PAGESIZE)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    _libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if _libc.mprotect(address, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed: this system does not let a process make a page executable")
    _fence = ctypes.CFUNCTYPE(None)(address)
    _fence.page = page  # the code lives as long as the function
    return _fence()


def eventfd_take(fd):
    """Consumes a pending notification, if any (PROTOCOL.md: RWF_NOWAIT, since
    another process may have cleared O_NONBLOCK on the shared description)."""
    try:
        os.preadv(fd, [bytearray(8)], -1, os.RWF_NOWAIT)
    except BlockingIOError:
        pass  # nothing pending: the wake was for someone else or already taken
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
            raise RuntimeError("this kernel cannot read an eventfd without blocking unless it is O_NONBLOCK")
        try:
            os.read(fd, 8)
        except BlockingIOError:
            pass


def eventfd_notify(fd):
    """Makes a notification pending. Linux takes RWF_NOWAIT on eventfd reads
    only (its write path refuses it with EOPNOTSUPP), so like memport this
    falls back to write(2) while the fd is O_NONBLOCK."""
    try:
        os.pwritev(fd, [(1).to_bytes(8, "little")], -1, os.RWF_NOWAIT)
        return
    except BlockingIOError:
        return  # the counter is full: a notification is pending already
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
    if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
        raise RuntimeError("cannot notify: the eventfd is not O_NONBLOCK and this kernel has no RWF_NOWAIT write for it")
    try:
        os.write(fd, (1).to_bytes(8, "little"))
    except BlockingIOError:
        pass


class QueueReader:
    """A queue-mode stream reader (PROTOCOL.md section 6).

    data_fd/control_fd: the data region (mapped read-only) and this reader's
    control region. wake_fd/wake_writer_fd: its eventfds; without them the
    reader never announces sleep and polls instead (a reader that never
    announces is never notified). watch_fd: a socket whose end (EOF or
    hang-up) means the writer is gone, read by on_socket() when readable.
    on_wait(): called each time the reader is about to block.
    """

    def __init__(self, data_fd, data_size, control_fd, control_size, wake_fd=None, wake_writer_fd=None,
                 watch_fd=None, on_socket=None, on_wait=None):
        self.wake, self.wake_writer, self.watch, self.on_socket, self.on_wait = wake_fd, wake_writer_fd, watch_fd, on_socket, on_wait
        self.waits = self.writer_wakes = 0
        self.writer_gone = False
        self.closed = False
        self.maps = []
        try:
            self.data = mmap.mmap(data_fd, data_size, mmap.MAP_SHARED, mmap.PROT_READ)
            self.maps.append(self.data)
            self.control = mmap.mmap(control_fd, control_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self.maps.append(self.control)
            self.bytes = memoryview(self.data)
            self.dw = self.bytes.cast("I")
            self.cw = memoryview(self.control).cast("I")
            self._validate(data_size, control_size)
        except BaseException:
            self.close()
            raise

    def _validate(self, data_size, control_size):
        # The fixed header is copied out once and validated; later changes are ignored.
        if data_size < 128 or control_size < 64:
            raise ProtocolError("stream regions too small")
        magic, version, mode, record_bytes, records, stride, slot_table, data_offset, max_readers = struct.unpack_from("<9I", self.data, 0)
        if magic != DATA_MAGIC or version != STREAM_VERSION:
            raise ProtocolError("not a memport stream (magic/version)")
        if mode not in (MODE_QUEUE, MODE_LATEST):
            raise ProtocolError("unknown stream mode %d" % mode)
        if not (1 <= record_bytes <= 1 << 31 and 1 <= records <= 1 << 20 and stride >= record_bytes and stride % 8 == 0
                and slot_table == 128 and data_offset >= 128 + 16 * records and data_offset % 8 == 0
                and data_offset + stride * records <= data_size and 1 <= max_readers <= 1024):
            raise ProtocolError("bad stream geometry")
        if mode != MODE_QUEUE:
            raise ProtocolError("this reader follows queue mode only (the stream is in latest mode)")
        self.record_bytes, self.records, self.stride, self.slot_table, self.data_offset = record_bytes, records, stride, slot_table, data_offset
        magic, version, start_lo, start_hi = struct.unpack_from("<4I", self.control, 0)
        if magic != CONTROL_MAGIC or version != STREAM_VERSION or start_hi >= 1 << 21:
            raise ProtocolError("not a memport stream reader's control region")
        # Positions are 53-bit counts; shared memory holds their low 32 bits.
        self.next_pos = self.released = self.known = start_hi * TWO32 + start_lo

    # Sequentially consistent word access: fence; store; fence, and load; fence.
    @staticmethod
    def _load(words, index):
        value = words[index]
        fence()
        return value

    @staticmethod
    def _store(words, index, value):
        fence()
        words[index] = value
        fence()

    def try_next(self):
        """(position, memoryview of the record's bytes), or None if no record is ready."""
        if self.next_pos >= self.known:
            if self._load(self.cw, C_WRITER_STATE) != 0:
                raise StreamEnded("the writer dropped this reader")
            ahead = (self._load(self.dw, W_WRITE_POS) - self.released) % TWO32
            if ahead > self.records:
                raise ProtocolError("the write position is %d records ahead, more than the %d slots" % (ahead, self.records))
            if self.released + ahead < self.next_pos:
                raise ProtocolError("the write position went back past records already read")
            self.known = self.released + ahead
            if self.next_pos >= self.known:
                return None
        p = self.next_pos
        slot = p % self.records
        # Plain loads, after the load that saw the record published; copied once, then checked.
        seq, length = struct.unpack_from("<2I", self.data, self.slot_table + 16 * slot)
        if seq != p % TWO32 or length > self.record_bytes:
            raise ProtocolError("slot %d does not hold record %d as it should" % (slot, p))
        self.next_pos = p + 1
        start = self.data_offset + self.stride * slot
        return p, self.bytes[start:start + length]

    def next(self):
        """The next record, sleeping (or polling) until there is one. Raises
        StreamEnded when the writer closed (after every record published)
        or is gone."""
        while True:
            if self.wake is not None:
                # Announce the sleep, then look one last time (PROTOCOL.md, "Wake-ups").
                self._store(self.cw, C_READER_SLEEPING, 1)
            state = self._load(self.dw, W_STATE)
            record = self.try_next()
            if record is not None or state & STATE_CLOSED or self.writer_gone:
                if self.wake is not None:
                    self._store(self.cw, C_READER_SLEEPING, 0)
                if record is not None:
                    return record
                # CLOSED was loaded before the write position: nothing follows.
                raise StreamEnded("the writer closed the stream" if state & STATE_CLOSED else "the connection closed")
            self.waits += 1
            if self.on_wait is not None:
                self.on_wait()
            watched = [fd for fd in (self.wake, self.watch) if fd is not None]
            # Without a wake eventfd, poll every millisecond.
            ready = select.poll()
            for fd in watched:
                ready.register(fd, select.POLLIN)
            for fd, _ in ready.poll(None if self.wake is not None else 1):
                if fd == self.wake:
                    eventfd_take(self.wake)
                elif fd == self.watch and not self.on_socket():
                    self.writer_gone = True  # deliver what was published, then end
                    self.watch = None

    def release(self, position):
        """Gives back every record up to `position` (records are released in order here)."""
        if position < self.released or position >= self.next_pos:
            return
        self.released = position + 1
        self._store(self.cw, C_READ_POS, self.released % TWO32)
        self._wake_writer_if_sleeping()

    def _wake_writer_if_sleeping(self):
        if self.wake_writer is None or self._load(self.cw, C_WRITER_SLEEPING) != 1:
            return
        # PROTOCOL.md asks for a compare-exchange 1 -> 0, which Python lacks.
        # Storing 0 then notifying is safe: notifications coalesce, so at worst
        # the writer wakes once more than needed and looks again.
        self._store(self.cw, C_WRITER_SLEEPING, 0)
        eventfd_notify(self.wake_writer)
        self.writer_wakes += 1

    def close(self):
        """Leaves the stream: what it held is free and its position no longer holds the writer back."""
        if self.closed:
            return
        self.closed = True
        if len(self.maps) == 2:
            self._store(self.cw, C_HOLD, 0)
            self._store(self.cw, C_READER_STATE, 1)
            self._wake_writer_if_sleeping()
        for name in ("dw", "cw", "bytes"):
            if hasattr(self, name):
                getattr(self, name).release()
        for m in self.maps:
            m.close()  # fails (BufferError) while a record's view is still held: release records first


def read_stream(sock, listener_pid, args):
    """--stream: take one message with a stream reader, read it to its end."""
    received = receive_frame(sock)
    if received.kind != MESSAGE:
        received.close()
        raise ProtocolError("expected MESSAGE, got type %d" % received.kind)
    # The handles are ours now: acknowledge at once (PROTOCOL.md section 3, item 4).
    sock.sendmsg([frame(ACK, received.seq)], [], socket.MSG_NOSIGNAL)
    data = json.loads(received.payload.decode("utf-8")) if received.payload is not None else None
    if not received.streams:
        received.close()
        sys.exit("the listener's message carried no stream (it should send { streams: [writer] })")
    stream = received.streams[0]
    # Only the first stream is read; everything else that came is closed.
    for fd in received.fds():
        if fd not in (stream.data[0], stream.control[0], stream.wake, stream.wake_writer):
            os.close(fd)

    def on_socket():
        """Anything on the connection while reading: True to go on, False when it ended."""
        try:
            more = receive_frame(sock)
        except (EOFError, ConnectionResetError):
            return False
        if more.kind == MESSAGE:  # not for this example: acknowledge and drop it
            more.close()
            sock.sendmsg([frame(ACK, more.seq)], [], socket.MSG_NOSIGNAL)
            return True
        raise ProtocolError("unexpected frame type %d while reading the stream" % more.kind)

    digest = hashlib.sha256()
    count = total = 0

    def on_wait():
        # With --json, a line each time the reader has read everything so far and sleeps.
        if args.json:
            print(json.dumps({"waiting": count}), flush=True)

    first = last = None
    reader = None
    try:
        reader = QueueReader(stream.data[0], stream.data[1], stream.control[0], stream.control[1],
                             stream.wake, stream.wake_writer, watch_fd=sock.fileno(), on_socket=on_socket, on_wait=on_wait)
        while True:
            try:
                position, record = reader.next()
            except StreamEnded as end:
                ended = str(end)
                break
            # Read in place: the slot stays the reader's until released.
            digest.update(len(record).to_bytes(4, "little"))
            digest.update(record)
            count += 1
            total += len(record)
            first = position if first is None else first
            last = position
            record.release()
            reader.release(position)
    finally:
        if reader is not None:
            reader.close()
        for fd in (stream.data[0], stream.control[0], stream.wake, stream.wake_writer):
            os.close(fd)
    summary = {"listener_pid": listener_pid, "data": data, "recordBytes": reader.record_bytes, "slots": reader.records,
               "records": count, "bytes": total, "first": first, "last": last, "sha256": digest.hexdigest(),
               "waits": reader.waits, "writer_wakes": reader.writer_wakes, "ended": ended}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print("stream: %d records of up to %d bytes in %d slots from process %d" % (count, reader.record_bytes, reader.records, listener_pid))
        print("read %d bytes in place, sha256 %s; slept %d times, woke the writer %d times" % (total, summary["sha256"], reader.waits, reader.writer_wakes))
        print("ended: %s" % ended, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--messages", type=int, default=1)
    parser.add_argument("--stream", action="store_true", help="receive a stream reader and read the stream to its end")
    parser.add_argument("--json", action="store_true", help="print one JSON line per message (or for the stream)")
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

    welcome = receive_frame(sock)
    if welcome.kind == REJECT:
        sys.exit("rejected: %s" % (welcome.payload or b"").decode("utf-8", "replace"))
    if welcome.kind != WELCOME:
        raise ProtocolError("expected WELCOME")

    if args.stream:
        # The connection stays open while reading: the reader lives as long as it.
        read_stream(sock, pid, args)
        sock.close()
        return

    for _ in range(args.messages):
        received = receive_frame(sock)
        if received.kind != MESSAGE:
            received.close()
            raise ProtocolError("expected MESSAGE, got type %d" % received.kind)
        data = json.loads(received.payload.decode("utf-8")) if received.payload is not None else None
        report = {"listener_pid": pid, "seq": received.seq, "data": data, "regions": [], "notifiers": len(received.notifiers)}
        for fd, size, read_only in received.regions:
            with mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as view:
                report["regions"].append({"size": size, "readOnly": read_only, "head": list(view[:8])})
        # This mode only looks at regions: notifiers and streams are closed unused.
        received.close()
        sock.sendmsg([frame(ACK, received.seq)], [], socket.MSG_NOSIGNAL)
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            for r in report["regions"]:
                print("region: %d bytes, %s, first bytes %s" % (r["size"], "read-only" if r["readOnly"] else "writable", r["head"]))
            print("data: %s" % json.dumps(data), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
