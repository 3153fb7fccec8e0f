/*
 * Files and directories (include/edo/fs.h).
 *
 * Every call is described by one fs_op on the caller's stack. With io_uring it becomes one
 * operation on the worker's ring (edo__uring_op); with epoll, or where the kernel lacks the
 * operation, it runs on the blocking pool (edo__pool_run), which performs the same system
 * call on a pool thread. A read the page cache can answer is made on the worker first, on
 * either backend (nowait_read). Either way the task waits until the kernel or the thread is done
 * with the op's buffers, so the op and everything it points to can live on the stack.
 *
 * The whole-file helpers are written once against a table of primitives: the plain system
 * calls, run together in a single pool call under epoll (one trip to a thread instead of
 * four or more), or edo's own calls under io_uring (one ring operation each).
 */
#include "core/runtime.h"
#include "io/uring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

/* One read or write moves at most this much: io_uring's length is 32 bits, and the kernel
 * stops a single transfer a little below 2 GiB anyway. */
#define MAX_IO ((size_t)1 << 30)
/* What one read or write made on the worker moves: a read of cached data (nowait_read),
 * or an operation on the ring, which the kernel may carry out inline in the worker's
 * submission when the page cache allows. Copying 1 MiB takes a tenth of a millisecond or
 * so; a larger call is made in such pieces, with a turn for the other tasks after each
 * piece made on the worker, so that no call holds its worker for long. */
#define WORKER_IO ((size_t)1 << 20)
/* A piece made on the worker that took longer than PIECE_NS (the page faults of a buffer
 * touched for the first time: 1 MiB of them took 3 ms here) makes the call's next pieces a
 * quarter as large, down to MIN_PIECE. */
#define PIECE_NS 500000
#define MIN_PIECE ((size_t)64 << 10)

enum {
    OP_OPEN,
    OP_CLOSE,
    OP_READ,
    OP_WRITE,
    OP_FSYNC,
    OP_FDATASYNC,
    OP_STAT,
    OP_LSTAT,
    OP_FSTAT,
    OP_RENAME,
    OP_UNLINK,
    OP_MKDIR,
    OP_RMDIR,
};

typedef struct fs_op {
    int kind;
    int fd;
    int flags;
    mode_t mode;
    const char *path, *path2;
    void *buf;
    size_t len;
    off_t off;
    struct stat *st;
    ssize_t res;    /* the pool's result: >= 0 or -errno */
    bool on_worker; /* a read made on the worker, without suspending (nowait_read) */
#ifdef EDO_HAVE_URING
    struct statx stx;
#endif
} fs_op;

static ssize_t neg_errno(ssize_t rc)
{
    return rc < 0 ? -errno : rc;
}

/* ---- the plain system calls, on a pool thread ------------------------------------------- */

static int sys_open(const char *path, int flags, mode_t mode)
{
    return (int)neg_errno(open(path, flags | O_CLOEXEC, mode));
}

static int sys_close(int fd)
{
    /* Linux closes the descriptor even when close fails (EINTR included): never retry. */
    return (int)neg_errno(close(fd));
}

/* One read or write of at most MAX_IO at off (-1: at the file position), again on EINTR. */
static ssize_t sys_rw(bool writing, int fd, void *buf, size_t len, off_t off)
{
    if (len > MAX_IO)
        len = MAX_IO;
    ssize_t n;
    do
        if (writing)
            n = off < 0 ? write(fd, buf, len) : pwrite(fd, buf, len, off);
        else
            n = off < 0 ? read(fd, buf, len) : pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return neg_errno(n);
}

static ssize_t sys_pread(int fd, void *buf, size_t len, off_t off)
{
    return sys_rw(false, fd, buf, len, off);
}

static ssize_t sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return sys_rw(true, fd, (void *)buf, len, off);
}

static int sys_fstat(int fd, struct stat *st)
{
    return (int)neg_errno(fstat(fd, st));
}

static void op_run(void *arg)
{
    fs_op *op = arg;
    switch (op->kind) {
    case OP_OPEN:
        op->res = sys_open(op->path, op->flags, op->mode);
        break;
    case OP_CLOSE:
        op->res = sys_close(op->fd);
        break;
    case OP_READ:
        op->res = sys_pread(op->fd, op->buf, op->len, op->off);
        break;
    case OP_WRITE:
        op->res = sys_pwrite(op->fd, op->buf, op->len, op->off);
        break;
    case OP_FSYNC:
        op->res = neg_errno(fsync(op->fd));
        break;
    case OP_FDATASYNC:
        op->res = neg_errno(fdatasync(op->fd));
        break;
    case OP_STAT:
        op->res = neg_errno(stat(op->path, op->st));
        break;
    case OP_LSTAT:
        op->res = neg_errno(lstat(op->path, op->st));
        break;
    case OP_FSTAT:
        op->res = sys_fstat(op->fd, op->st);
        break;
    case OP_RENAME:
        op->res = neg_errno(rename(op->path, op->path2));
        break;
    case OP_UNLINK:
        op->res = neg_errno(unlink(op->path));
        break;
    case OP_MKDIR:
        op->res = neg_errno(mkdir(op->path, op->mode));
        break;
    case OP_RMDIR:
        op->res = neg_errno(rmdir(op->path));
        break;
    default:
        op->res = -EINVAL;
    }
}

/* ---- io_uring --------------------------------------------------------------------------- */

#ifdef EDO_HAVE_URING

static const uint8_t uring_opcode[] = {
    [OP_OPEN] = IORING_OP_OPENAT,     [OP_CLOSE] = IORING_OP_CLOSE,
    [OP_READ] = IORING_OP_READ,       [OP_WRITE] = IORING_OP_WRITE,
    [OP_FSYNC] = IORING_OP_FSYNC,     [OP_FDATASYNC] = IORING_OP_FSYNC,
    [OP_STAT] = IORING_OP_STATX,      [OP_LSTAT] = IORING_OP_STATX,
    [OP_FSTAT] = IORING_OP_STATX,     [OP_RENAME] = IORING_OP_RENAMEAT,
    [OP_UNLINK] = IORING_OP_UNLINKAT, [OP_MKDIR] = IORING_OP_MKDIRAT,
    [OP_RMDIR] = IORING_OP_UNLINKAT,
};

/* Which of our operations the kernel has (RENAMEAT and UNLINKAT came in 5.11, MKDIRAT in
 * 5.15): the others take the pool. Asked once per process, on a ring of liburing's own. */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool uring_supported[sizeof uring_opcode];

static void probe_ops(void)
{
    struct io_uring_probe *p = io_uring_get_probe();
    if (!p)
        return; /* none: everything on the pool */
    for (size_t i = 0; i < sizeof uring_opcode; i++)
        uring_supported[i] = io_uring_opcode_supported(p, uring_opcode[i]);
    io_uring_free_probe(p);
}

static bool uring_has(int kind)
{
    pthread_once(&probe_once, probe_ops);
    return uring_supported[kind];
}

static void op_prep(struct io_uring_sqe *sqe, void *arg)
{
    fs_op *op = arg;
    /* Offset -1: at the file position, which moves (IORING_FEAT_RW_CUR_POS). */
    __u64 off = op->off < 0 ? (__u64)-1 : (__u64)op->off;
    unsigned len = (unsigned)(op->len > MAX_IO ? MAX_IO : op->len);
    switch (op->kind) {
    case OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, op->path, op->flags | O_CLOEXEC, op->mode);
        break;
    case OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case OP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, len, off);
        break;
    case OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, len, off);
        break;
    case OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, 0);
        break;
    case OP_FDATASYNC:
        io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
        break;
    case OP_STAT:
        io_uring_prep_statx(sqe, AT_FDCWD, op->path, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS,
                            &op->stx);
        break;
    case OP_LSTAT:
        io_uring_prep_statx(sqe, AT_FDCWD, op->path, AT_STATX_SYNC_AS_STAT | AT_SYMLINK_NOFOLLOW,
                            STATX_BASIC_STATS, &op->stx);
        break;
    case OP_FSTAT:
        io_uring_prep_statx(sqe, op->fd, "", AT_STATX_SYNC_AS_STAT | AT_EMPTY_PATH,
                            STATX_BASIC_STATS, &op->stx);
        break;
    case OP_RENAME:
        io_uring_prep_renameat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2, 0);
        break;
    case OP_UNLINK:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, 0);
        break;
    case OP_MKDIR:
        io_uring_prep_mkdirat(sqe, AT_FDCWD, op->path, op->mode);
        break;
    case OP_RMDIR:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, AT_REMOVEDIR);
        break;
    }
}

/* struct statx to struct stat, every field, as the C library's stat does it. */
static void statx_to_stat(const struct statx *x, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
    st->st_ino = (ino_t)x->stx_ino;
    st->st_mode = x->stx_mode;
    st->st_nlink = (nlink_t)x->stx_nlink;
    st->st_uid = x->stx_uid;
    st->st_gid = x->stx_gid;
    st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
    st->st_size = (off_t)x->stx_size;
    st->st_blksize = (blksize_t)x->stx_blksize;
    st->st_blocks = (blkcnt_t)x->stx_blocks;
    st->st_atim.tv_sec = (time_t)x->stx_atime.tv_sec;
    st->st_atim.tv_nsec = (long)x->stx_atime.tv_nsec;
    st->st_mtim.tv_sec = (time_t)x->stx_mtime.tv_sec;
    st->st_mtim.tv_nsec = (long)x->stx_mtime.tv_nsec;
    st->st_ctim.tv_sec = (time_t)x->stx_ctime.tv_sec;
    st->st_ctim.tv_nsec = (long)x->stx_ctime.tv_nsec;
}

#endif /* EDO_HAVE_URING */

static edo_wait_reason op_why(int kind)
{
    return kind == OP_READ ? EDO_WAIT_READ : kind == OP_WRITE ? EDO_WAIT_WRITE : EDO_WAIT_OTHER;
}

/* A read that the page cache can answer at once is made on the worker itself, on both
 * backends. Under epoll the alternative is a trip to the pool, two thread wake-ups, some
 * 20 us; under io_uring an operation, which parks and resumes the task (1.3 us for a cached
 * 4 KiB read here, against 0.95 us this way). RWF_NOWAIT makes the kernel return -EAGAIN
 * rather than wait for the disk (or for a pipe's writer), and then the read goes to the
 * ring or the pool. An O_DIRECT read would wait for the device even so, which must never
 * happen on a worker: those go to the ring or the pool at once. Returns the count, or
 * -errno; -EAGAIN: make the read the usual way. */
static ssize_t nowait_read(fs_op *op)
{
#ifdef RWF_NOWAIT
    int fl = fcntl(op->fd, F_GETFL);
    if (fl < 0 || (fl & O_DIRECT))
        return -EAGAIN; /* a bad descriptor is reported by the usual read */
    struct iovec iov = { op->buf, op->len > WORKER_IO ? WORKER_IO : op->len };
    ssize_t n;
    do
        n = preadv2(op->fd, &iov, 1, op->off < 0 ? -1 : op->off, RWF_NOWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        op->len = iov.iov_len; /* what was asked of this piece */
        op->on_worker = true;
        edo__budget_spend(); /* done without suspending: a loop of them must yield */
        return n;
    }
    /* EOPNOTSUPP: not for this file (or an older kernel); EINVAL, ENOSYS: older still.
     * The usual read reports any error that is the file's own. */
    return -EAGAIN;
#else
    (void)op;
    return -EAGAIN;
#endif
}

/* Runs one op on the ring or on the pool; its result, >= 0 or -errno. */
static ssize_t op_call(fs_op *op)
{
    edo_task *self = edo__task_current();
    if (!self)
        return -EDO_ENOTASK;
    int rc = edo__may_start(self, EDO_NEVER);
    if (rc < 0)
        return rc;
    if (op->kind == OP_READ) {
        ssize_t n = nowait_read(op);
        if (n != -EAGAIN)
            return n;
    }
#ifdef EDO_HAVE_URING
    if (edo__uring_on() && uring_has(op->kind)) {
        /* A paused clock's auto-advance waits for it, as for a call on the pool. */
        bool hold = edo__clock_paused(self->rt);
        if (hold)
            edo__clock_hold(self->rt);
        if ((op->kind == OP_READ || op->kind == OP_WRITE) && op->len > WORKER_IO)
            op->len = WORKER_IO; /* it may be carried out inline, on this worker */
        edo__wait_note(self, NULL, op->fd, EDO__OP_FILE);
        rc = edo__uring_op(op_prep, op, op_why(op->kind), EDO_NEVER);
        if (hold)
            edo__clock_unhold(self->rt);
        if (rc >= 0 && (op->kind == OP_STAT || op->kind == OP_LSTAT || op->kind == OP_FSTAT))
            statx_to_stat(&op->stx, op->st);
        return rc;
    }
#endif
    rc = edo__pool_run(op_run, op, op_why(op->kind), false);
    return rc < 0 ? rc : op->res;
}

/* ---- the calls -------------------------------------------------------------------------- */

int edo_fs_open(const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EINVAL;
    fs_op op = { .kind = OP_OPEN, .path = path, .flags = flags, .mode = mode };
    return (int)op_call(&op);
}

int edo_fs_close(int fd)
{
    if (!edo__task_current())
        return -EDO_ENOTASK;
    fs_op op = { .kind = OP_CLOSE, .fd = fd };
    /* Also after an abort or past the deadline: a close never leaks the descriptor. */
#ifdef EDO_HAVE_URING
    if (edo__uring_on() && uring_has(OP_CLOSE))
        return edo__uring_op_final(op_prep, &op);
#endif
    int rc = edo__pool_run(op_run, &op, EDO_WAIT_OTHER, true);
    return rc < 0 ? rc : (int)op.res;
}

static bool is_regular(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* A read or write of len bytes, in as many calls as the pieces it is made in take (a
 * piece on the worker or the ring moves at most WORKER_IO): to the end of len, a short
 * read (the end of the file, or all a FIFO had), or an error. A short read of cached data
 * from a regular file is no end: the rest was not in the page cache, and the next piece
 * waits for it. An error or an abort after some bytes moved returns their count; the next
 * call reports it. */
static ssize_t rw_call(int kind, int fd, char *buf, size_t len, off_t off)
{
    size_t total = 0, piece = MAX_IO;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX; /* the count must fit the result */
    do {
        size_t want = len - total > piece ? piece : len - total;
        fs_op op = { .kind = kind,
                     .fd = fd,
                     .buf = buf + total,
                     .len = want,
                     .off = off < 0 ? -1 : off + (off_t)total };
        uint64_t c0 = edo__cycles();
        ssize_t n = op_call(&op);
        if (n < 0)
            return total ? (ssize_t)total : n;
        total += (size_t)n;
        /* Short: a read ends there unless the page cache held only part of a regular
         * file (the rest comes from the disk); a FIFO returns what it had. A write goes
         * on, and the next piece reports the error that stopped it, if any. */
        if (n == 0 || ((size_t)n < op.len && kind == OP_READ && (!op.on_worker || !is_regular(fd))))
            break;
        if (op.on_worker && piece > MIN_PIECE && edo__cycles_to_ns(edo__cycles() - c0) > PIECE_NS)
            piece = op.len / 4 < MIN_PIECE ? MIN_PIECE : op.len / 4; /* op.len: this piece */
        /* A piece of cached data read on the worker: the others, and the timers and I/O
         * that came due meanwhile, get a turn before the next (one that suspended has
         * given them theirs). */
        if (op.on_worker && total < len && edo__yield_polling() < 0)
            break;
    } while (total < len);
    return (ssize_t)total;
}

ssize_t edo_fs_pread(int fd, void *buf, size_t len, off_t off)
{
    return rw_call(OP_READ, fd, buf, len, off);
}

ssize_t edo_fs_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return rw_call(OP_WRITE, fd, (char *)buf, len, off);
}

int edo_fs_fsync(int fd)
{
    fs_op op = { .kind = OP_FSYNC, .fd = fd };
    return (int)op_call(&op);
}

int edo_fs_fdatasync(int fd)
{
    fs_op op = { .kind = OP_FDATASYNC, .fd = fd };
    return (int)op_call(&op);
}

static int stat_call(int kind, const char *path, int fd, struct stat *st)
{
    if ((kind != OP_FSTAT && !path) || !st)
        return -EINVAL;
    fs_op op = { .kind = kind, .path = path, .fd = fd, .st = st };
    return (int)op_call(&op);
}

int edo_fs_stat(const char *path, struct stat *st)
{
    return stat_call(OP_STAT, path, -1, st);
}

int edo_fs_lstat(const char *path, struct stat *st)
{
    return stat_call(OP_LSTAT, path, -1, st);
}

int edo_fs_fstat(int fd, struct stat *st)
{
    return stat_call(OP_FSTAT, NULL, fd, st);
}

static int path_call(int kind, const char *path, const char *path2, mode_t mode)
{
    if (!path || (kind == OP_RENAME && !path2))
        return -EINVAL;
    fs_op op = { .kind = kind, .path = path, .path2 = path2, .mode = mode };
    return (int)op_call(&op);
}

int edo_fs_rename(const char *from, const char *to)
{
    return path_call(OP_RENAME, from, to, 0);
}

int edo_fs_unlink(const char *path)
{
    return path_call(OP_UNLINK, path, NULL, 0);
}

int edo_fs_mkdir(const char *path, mode_t mode)
{
    return path_call(OP_MKDIR, path, NULL, mode);
}

int edo_fs_rmdir(const char *path)
{
    return path_call(OP_RMDIR, path, NULL, 0);
}

/* ---- loops and whole files, on either set of primitives -------------------------------- */

typedef struct file_ops {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*fstat)(int fd, struct stat *st);
} file_ops;

static const file_ops sys_ops = { sys_open, sys_close, sys_pread, sys_pwrite, sys_fstat };
static const file_ops edo_ops = { edo_fs_open, edo_fs_close, edo_fs_pread, edo_fs_pwrite,
                                  edo_fs_fstat };

/* Reads or writes all of len bytes at off (-1: at the file position), piece after piece.
 * A read that meets the end first fails with -ENODATA; a write that a file takes 0 bytes
 * of (a regular file never does) fails with -EIO rather than spin. *done (may be NULL):
 * the bytes moved. */
static int all_with(const file_ops *ops, bool writing, int fd, char *buf, size_t len, off_t off,
                    size_t *done)
{
    size_t moved = 0;
    int rc = 0;
    while (moved < len) {
        off_t at = off < 0 ? -1 : off + (off_t)moved;
        ssize_t n = writing ? ops->pwrite(fd, buf + moved, len - moved, at)
                            : ops->pread(fd, buf + moved, len - moved, at);
        if (n <= 0) {
            rc = n < 0 ? (int)n : writing ? -EIO : -ENODATA;
            break;
        }
        moved += (size_t)n;
    }
    if (done)
        *done = moved;
    return rc;
}

static int task_all(bool writing, int fd, char *buf, size_t len, off_t off, size_t *done)
{
    if (done)
        *done = 0;
    if (!edo__task_current())
        return -EDO_ENOTASK;
    return all_with(&edo_ops, writing, fd, buf, len, off, done);
}

int edo_fs_pread_exact(int fd, void *buf, size_t len, off_t off, size_t *done)
{
    return task_all(false, fd, buf, len, off, done);
}

int edo_fs_pwrite_all(int fd, const void *buf, size_t len, off_t off, size_t *done)
{
    return task_all(true, fd, (char *)buf, len, off, done);
}

static int read_file_with(const file_ops *ops, const char *path, void **data, size_t *len,
                          size_t max)
{
    int fd = ops->open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    /* Room for the content and one byte more: the NUL, or the probe that finds the file
     * longer than max. */
    size_t limit = max == SIZE_MAX ? SIZE_MAX - 1 : max;
    char *buf = NULL;
    size_t cap = 4096, total = 0;
    struct stat st;
    int rc = ops->fstat(fd, &st);
    if (rc < 0)
        goto out;
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto out;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uint64_t)st.st_size > limit) {
            rc = -EFBIG;
            goto out;
        }
        cap = (size_t)st.st_size;
    }
    if (cap > limit)
        cap = limit;
    cap++;
    buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (total == cap) {
            if (cap > limit) { /* limit + 1 bytes read */
                rc = -EFBIG;
                goto out;
            }
            size_t ncap = cap > (limit + 1) / 2 ? limit + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = ops->pread(fd, buf + total, cap - total, -1);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    buf[total] = '\0';
    if (cap - total > 4096) { /* a file that said less than it had: give back the rest */
        char *nbuf = realloc(buf, total + 1);
        if (nbuf)
            buf = nbuf;
    }
    *data = buf;
    *len = total;
    buf = NULL;
out:
    free(buf);
    ops->close(fd); /* a read has nothing to lose at close */
    return rc;
}

static int write_file_with(const file_ops *ops, const char *path, const void *data, size_t len,
                           mode_t mode)
{
    int fd = ops->open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return fd;
    int rc = all_with(ops, true, fd, (char *)data, len, 0, NULL);
    int crc = ops->close(fd); /* where a network file system reports a failed write */
    return rc < 0 ? rc : crc;
}

struct whole_job {
    const char *path;
    void **data;
    const void *wdata;
    size_t *len;
    size_t wlen, max;
    mode_t mode;
    int rc;
};

static void read_file_job(void *arg)
{
    struct whole_job *j = arg;
    j->rc = read_file_with(&sys_ops, j->path, j->data, j->len, j->max);
}

static void write_file_job(void *arg)
{
    struct whole_job *j = arg;
    j->rc = write_file_with(&sys_ops, j->path, j->wdata, j->wlen, j->mode);
}

/* The whole-file calls: one pool call under epoll, ring operations under io_uring. */
static int whole_call(struct whole_job *j, void (*job)(void *), bool writing)
{
    edo_task *self = edo__task_current();
    if (!self)
        return -EDO_ENOTASK;
    int rc = edo__may_start(self, EDO_NEVER);
    if (rc < 0)
        return rc;
#ifdef EDO_HAVE_URING
    if (edo__uring_on()) {
        if (writing)
            return write_file_with(&edo_ops, j->path, j->wdata, j->wlen, j->mode);
        return read_file_with(&edo_ops, j->path, j->data, j->len, j->max);
    }
#endif
    rc = edo__pool_run(job, j, writing ? EDO_WAIT_WRITE : EDO_WAIT_READ, false);
    return rc < 0 ? rc : j->rc;
}

int edo_fs_read_file(const char *path, void **data, size_t *len, size_t max)
{
    if (!data || !len)
        return -EINVAL;
    *data = NULL;
    *len = 0;
    if (!path)
        return -EINVAL;
    struct whole_job j = { .path = path, .data = data, .len = len, .max = max };
    return whole_call(&j, read_file_job, false);
}

int edo_fs_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    if (!path || (!data && len))
        return -EINVAL;
    struct whole_job j = { .path = path, .wdata = data, .wlen = len, .mode = mode };
    return whole_call(&j, write_file_job, true);
}

/* ---- directory listing ------------------------------------------------------------------ */

struct list_job {
    const char *path;
    edo_fs_entry *entries;
    size_t count;
    int rc;
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const edo_fs_entry *)a)->name, ((const edo_fs_entry *)b)->name);
}

/* Reads the directory into a growing array of entries whose names point into a growing
 * buffer (as offsets while it moves), then makes both one allocation: entries first, the
 * names after them, so that edo_fs_list_free is one free. */
static void list_job_run(void *arg)
{
    struct list_job *j = arg;
    edo_fs_entry *ents = NULL;
    char *names = NULL;
    size_t n = 0, ecap = 0, nlen = 0, ncap = 0;
    int rc = 0;
    int fd = open(j->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        j->rc = -errno;
        return;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        j->rc = -errno;
        close(fd);
        return;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            rc = -errno; /* 0 at the end */
            break;
        }
        if (e->d_name[0] == '.' &&
            (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
            continue;
        size_t len = strlen(e->d_name) + 1;
        if (n == ecap) {
            ecap = ecap ? ecap * 2 : 64;
            edo_fs_entry *ne = realloc(ents, ecap * sizeof *ents);
            if (!ne) {
                rc = -ENOMEM;
                break;
            }
            ents = ne;
        }
        if (nlen + len > ncap) {
            ncap = ncap ? ncap * 2 : 4096;
            while (ncap < nlen + len)
                ncap *= 2;
            char *nn = realloc(names, ncap);
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        memcpy(names + nlen, e->d_name, len);
        ents[n].name = (const char *)(uintptr_t)nlen;
        ents[n].ino = e->d_ino;
        ents[n].type = e->d_type;
        n++;
        nlen += len;
    }
    closedir(d);
    edo_fs_entry *out = NULL;
    if (rc == 0) {
        out = malloc(n * sizeof *out + nlen + 1);
        if (!out)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        char *dst = (char *)(out + n);
        if (nlen)
            memcpy(dst, names, nlen);
        for (size_t i = 0; i < n; i++) {
            out[i] = ents[i];
            out[i].name = dst + (uintptr_t)ents[i].name;
        }
        qsort(out, n, sizeof *out, entry_cmp);
        j->entries = out;
        j->count = n;
    }
    free(ents);
    free(names);
    j->rc = rc;
}

int edo_fs_list(const char *path, edo_fs_entry **entries, size_t *count)
{
    if (!entries || !count)
        return -EINVAL;
    *entries = NULL;
    *count = 0;
    if (!path)
        return -EINVAL;
    struct list_job j = { .path = path };
    int rc = edo__pool_run(list_job_run, &j, EDO_WAIT_READ, false);
    if (rc < 0)
        return rc;
    if (j.rc < 0)
        return j.rc;
    *entries = j.entries;
    *count = j.count;
    return 0;
}

void edo_fs_list_free(edo_fs_entry *entries)
{
    free(entries);
}
