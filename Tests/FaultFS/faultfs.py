#!/usr/bin/python3
# faultfs: a passthrough FUSE file system over a backing directory that fails on command, for the
# fault tests (Tests/EndToEndTests/FaultTests.swift, through TestSupport's FaultFileSystem).
#
#   faultfs.py BACKING MOUNTPOINT CONTROL
#
# Like fusepy's loopback.py (and libfuse's passthrough example), except that before every call it
# reads the rules in CONTROL/faults.json (again whenever that file is replaced) and applies the first
# rule that matches the call:
#
#   {"op": "write", "name": ".*.walferry-tmp", "fault": "ENOSPC", "offset": 524288, "times": 1}
#
# - op: a fusepy operation (getattr, open, create, read, write, fsync, fsyncdir, link, rename, unlink,
#   readdir, ...); name: a glob matched against the entry's last path component ("*" by default; one
#   starting with "/" is matched against the whole path); times: how often it fires (always if absent).
# - fault: an errno name (EIO, ENOSPC, ESTALE, EPERM, ...), raised by the call; on write and read only
#   once the call's byte range reaches `offset`, and a write that crosses it stores and reports the
#   bytes before it, as a file system that fills up does;
#   "short": a write stores and reports half of its bytes (the caller must write the rest);
#   "lost": a write reports success and stores nothing;
#   "flip": the byte at `offset` of the file is inverted in what a write stores or a read returns;
#   "hang": the call blocks until CONTROL/faults.json is replaced, then goes on normally; while it
#   blocks, CONTROL/hanging exists.
# Every time a rule fires, a line "OP FAULT PATH" is appended to CONTROL/fired.log.
#
# Every open file bypasses the page cache (direct_io), attributes and names are never cached, so
# each read, write and stat of a test reaches this process, and a file removed while open goes at
# once (hard_remove: no .fuse_hidden file). POSIX and flock(2) locks are left to the
# kernel (local locks), as on a local file system. Runs in the foreground until unmounted
# (fusermount3 -u MOUNTPOINT).

import errno
import fnmatch
import json
import os
import sys
import threading
import time

import fusepy
from fusepy import FUSE, FuseOSError, Operations


def say(message):
    print("faultfs: " + message, file=sys.stderr, flush=True)


def die(message):
    say("error: " + message)
    sys.exit(1)


class Rules:
    """The rules of CONTROL/faults.json, read again whenever that file is replaced."""

    def __init__(self, control):
        self.control = control
        self.rules_path = os.path.join(control, "faults.json")
        self.log_path = os.path.join(control, "fired.log")
        self.hanging_path = os.path.join(control, "hanging")
        self.lock = threading.Lock()
        self.stamp = None
        self.generation = 0
        self.rules = []

    def _stamp(self):
        try:
            info = os.stat(self.rules_path)
            return (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            return None

    def refresh(self):
        stamp = self._stamp()
        with self.lock:
            if stamp == self.stamp:
                return
            self.stamp = stamp
            self.generation += 1
            try:
                with open(self.rules_path) as file:
                    self.rules = [dict(rule) for rule in json.load(file)] if stamp else []
            except (OSError, ValueError) as error:
                say("cannot read %s: %s; no faults" % (self.rules_path, error))
                self.rules = []

    def match(self, op, path, start=None, end=None):
        """The first rule for this call that still fires (its count taken), or None."""
        self.refresh()
        name = path.rsplit("/", 1)[-1]
        with self.lock:
            for rule in self.rules:
                ops = rule.get("op")
                if op != ops and not (isinstance(ops, list) and op in ops):
                    continue
                pattern = rule.get("name", "*")
                if not fnmatch.fnmatchcase(path if pattern.startswith("/") else name, pattern):
                    continue
                if start is not None and end <= rule.get("offset", 0) and rule.get("fault") != "short":
                    continue  # this call's bytes end before the fault's offset
                if rule.get("times") is not None:
                    if rule["times"] <= 0:
                        continue
                    rule["times"] -= 1
                self.fired(op, rule["fault"], path)
                return rule
        return None

    def fired(self, op, fault, path):
        with open(self.log_path, "a") as log:
            log.write("%s %s %s\n" % (op, fault, path))

    def hang(self, op, path):
        """Blocks until the rules are replaced, or the caller is interrupted by a signal."""
        generation = self.generation
        with open(self.hanging_path, "w") as marker:
            marker.write("%s %s\n" % (op, path))
        try:
            while True:
                self.refresh()
                if self.generation != generation:
                    return
                if fusepy._libfuse.fuse_interrupted():
                    self.fired(op, "interrupted", path)
                    raise FuseOSError(errno.EINTR)
                time.sleep(0.01)
        finally:
            try:
                os.unlink(self.hanging_path)
            except FileNotFoundError:
                pass


def raise_errno(rule):
    number = getattr(errno, rule["fault"], None)
    if not isinstance(number, int):
        raise FuseOSError(errno.EINVAL)
    raise FuseOSError(number)


class FaultFS(Operations):
    lock = None  # POSIX locks stay in the kernel (no FUSE_POSIX_LOCKS)

    def __init__(self, backing, rules):
        self.backing = os.path.realpath(backing)
        self.rules = rules

    def __call__(self, op, *args):
        # read and write apply their rules themselves (they depend on the byte range).
        if op not in ("read", "write"):
            path = args[0] if args and isinstance(args[0], str) else "/"
            rule = self.rules.match(op, path)
            if rule is not None:
                if rule["fault"] == "hang":
                    self.rules.hang(op, path)
                else:
                    raise_errno(rule)
        return super().__call__(op, *args)

    def real(self, path):
        return self.backing + path

    # Files and directories

    def getattr(self, path, fh=None):
        info = os.fstat(fh.fh) if fh is not None and not isinstance(fh, int) and fh.fh else os.lstat(self.real(path))
        return {key: getattr(info, key) for key in
                ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")}

    def access(self, path, amode):
        if not os.access(self.real(path), amode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def readlink(self, path):
        return os.readlink(self.real(path))

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))

    def symlink(self, target, source):
        os.symlink(source, self.real(target))

    def link(self, target, source):
        os.link(self.real(source), self.real(target))

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times=None):
        os.utime(self.real(path), times, follow_symlinks=False)

    def truncate(self, path, length, fh=None):
        if fh is not None and not isinstance(fh, int) and fh.fh:
            os.ftruncate(fh.fh, length)
        else:
            os.truncate(self.real(path), length)

    def statfs(self, path):
        info = os.statvfs(self.real(path))
        return {key: getattr(info, key) for key in
                ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def opendir(self, path):
        if not os.path.isdir(self.real(path)):
            raise FuseOSError(errno.ENOTDIR)
        return 0

    def fsyncdir(self, path, datasync, fh):
        descriptor = os.open(self.real(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # Open files (raw_fi: fh is the fuse_file_info)

    def open(self, path, fi):
        fi.fh = os.open(self.real(path), fi.flags & ~(os.O_NOFOLLOW | os.O_NONBLOCK) | os.O_NOFOLLOW)
        fi.direct_io = 1
        return 0

    def create(self, path, mode, fi):
        fi.fh = os.open(self.real(path), fi.flags | os.O_CREAT, mode)
        fi.direct_io = 1
        return 0

    def read(self, path, size, offset, fi):
        rule = self.rules.match("read", path, offset, offset + size)
        if rule is not None:
            fault = rule["fault"]
            if fault == "hang":
                self.rules.hang("read", path)
            elif fault != "flip":
                raise_errno(rule)
        data = os.pread(fi.fh, size, offset)
        if rule is not None and rule["fault"] == "flip":
            at = rule.get("offset", 0) - offset
            if 0 <= at < len(data):
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        return data

    def write(self, path, data, offset, fi):
        rule = self.rules.match("write", path, offset, offset + len(data))
        if rule is None:
            return os.pwrite(fi.fh, data, offset)
        fault, at = rule["fault"], rule.get("offset", 0) - offset
        if fault == "hang":
            self.rules.hang("write", path)
            return os.pwrite(fi.fh, data, offset)
        if fault == "short":
            return os.pwrite(fi.fh, data[:max(1, len(data) // 2)], offset)
        if fault == "lost":
            return len(data)
        if fault == "flip":
            if 0 <= at < len(data):
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
            return os.pwrite(fi.fh, data, offset)
        if at > 0:
            return os.pwrite(fi.fh, data[:at], offset)  # up to the fault; the next write fails
        raise_errno(rule)

    def fsync(self, path, datasync, fi):
        os.fsync(fi.fh)

    def flush(self, path, fi):
        return 0

    def release(self, path, fi):
        os.close(fi.fh)
        return 0


def main():
    if len(sys.argv) != 4:
        die("usage: faultfs.py BACKING MOUNTPOINT CONTROL")
    backing, mountpoint, control = sys.argv[1:]
    for folder in (backing, mountpoint, control):
        if not os.path.isdir(folder):
            die("not a directory: " + folder)
    FUSE(FaultFS(backing, Rules(control)), mountpoint, raw_fi=True, foreground=True, nothreads=False,
         use_ino=True, hard_remove=True, attr_timeout=0, entry_timeout=0, negative_timeout=0, allow_other=True,
         fsname="faultfs", subtype="faultfs")


if __name__ == "__main__":
    main()
