"""One run per directory: an advisory lock on RUN/.lock, held while a Trainer owns the directory.

flock(2) locks belong to the open file, so the kernel drops the lock when its process dies, however
it dies (kill -9 included): a crashed run never leaves a directory locked. The file itself stays
(removing it would race with the next locker) and holds the owner's pid for the refusal message.
Where fcntl does not exist (Windows) there is no lock.
"""
import os

try:
    import fcntl
except ImportError:                  # pragma: no cover - not on the platforms CI runs
    fcntl = None

LOCK_NAME = ".lock"


class RunLocked(ValueError):
    """Another process holds the run directory."""


class RunLock:
    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.fd = None

    @property
    def held(self):
        return self.fd is not None

    def acquire(self):
        """Create the folder if needed and take the lock; RunLocked when another process has it."""
        if self.fd is not None or fcntl is None:
            return
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {owner})" if owner.isdigit() else ""
            if owner == str(os.getpid()):
                who = " (a Trainer of this process: run() or close() it first)"
            raise RunLocked(f"run directory {self.folder} is in use by another seqlearn run{who}; "
                            f"wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)             # closing the file drops the lock

    def __del__(self):
        self.release()
