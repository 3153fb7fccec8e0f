/*
 * edo/fs.h - files and directories. Included by edo.h; do not include it alone.
 *
 * Conventions of this part (on top of edo.h's)
 *  - A file is a plain descriptor (an int) from edo_fs_open, or from anywhere else: the
 *    calls here take any descriptor of a regular file or directory, and a descriptor from
 *    edo_fs_open works with every other call a C program makes (fdopen, mmap, sendfile).
 *  - Every call suspends the calling task, never its worker: with the io_uring backend
 *    each call is one operation on the worker's ring; with epoll it runs on the blocking
 *    pool (edo_spawn_blocking's threads), which the task waits for. The API and the
 *    results are the same on both. Listing a directory has no io_uring operation and uses
 *    the blocking pool on both.
 *  - Calls only from a task (-EDO_ENOTASK elsewhere). Errors are -errno, as from the system
 *    call of the same name (-ENOENT, -EEXIST, -EISDIR, -ENOTDIR, -EBADF, -EACCES, ...).
 *  - Cancellation and deadlines: a call made once the task is aborted or past its
 *    deadline fails with -ECANCELED or -ETIMEDOUT and does nothing. A call already under
 *    way is not cut short: the kernel or the pool thread may be using the caller's buffer,
 *    so the call waits until it is done and returns its real result (data read or written
 *    is never reported lost); the abort then shows at the task's next suspension point.
 *    Under io_uring an operation that can wait forever (a read on a FIFO) is cancelled and
 *    returns -ECANCELED or -ETIMEDOUT once the kernel has let go of the buffer; a regular
 *    file's read or write finishes instead. So when a call returns, its buffer is the
 *    caller's again, whatever the return: freeing it then is always safe.
 *  - Regular files and directories only. A read on a pipe, a FIFO, a terminal or a socket
 *    can wait for ever, and on the epoll backend it would hold a pool thread all that time
 *    and could not be cancelled. Those go through edo_io_wrap and edo_read/edo_write,
 *    which wait for readiness without a thread; that includes stdin and stdout whatever
 *    they are connected to (edo_io_wrap accepts a regular file too, and then reads and
 *    writes it directly):
 *        edo_io *in;
 *        int rc = edo_io_wrap(&in, dup(STDIN_FILENO));  (edo_close closes the copy only)
 *        char buf[4096];
 *        ssize_t n;
 *        while (rc == 0 && (n = edo_read(in, buf, sizeof buf)) > 0)
 *            ... use n bytes ...
 *        edo_close(in);
 *    edo_io_wrap makes the descriptor non-blocking. That flag belongs to the open file,
 *    which copies made by dup and other processes on the same pipe or terminal share (a
 *    shell may find its terminal non-blocking after the program ends): a program that
 *    cares clears O_NONBLOCK on STDIN_FILENO with fcntl once it is done.
 */
#ifndef EDO_FS_H
#define EDO_FS_H

#ifndef EDO_H
#error "include <edo.h>, which includes this header"
#endif

#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------- */
/* Opening and closing                                                                      */

/* Opens path as open(2) does (flags: O_RDONLY, O_WRONLY or O_RDWR, and O_CREAT, O_TRUNC,
 * O_APPEND, O_EXCL, O_DIRECTORY, O_DIRECT...; mode: permissions for a file O_CREAT makes,
 * before the umask). O_CLOEXEC is always added. Returns the descriptor or -errno. */
int edo_fs_open(const char *path, int flags, mode_t mode);

/* Closes fd. The descriptor is closed whatever the return, and even from an aborted task
 * or past the deadline (this call alone runs then too, so that cleanup after -ECANCELED
 * leaks nothing). Returns 0 or -errno from close(2) (-EIO: data written earlier could not
 * be stored). */
int edo_fs_close(int fd);

/* ---------------------------------------------------------------------------------------- */
/* Reading and writing                                                                      */

/* Reads up to len bytes at offset off into buf (pread(2)); off < 0: at the file position,
 * which moves (read(2)). Returns the count, 0 at end of file (or when len is 0), or
 * -errno. A regular file is read to len or to its end: a large read is made in pieces
 * (at most 1 MiB each when the page cache answers it on the worker, with a turn for the
 * other tasks after each, so that no call holds its worker for long). If an error or an
 * abort stops it after some bytes were read, it returns their count, and the next call
 * reports the error. A FIFO returns what it had (edo_fs_pread_exact loops). */
ssize_t edo_fs_pread(int fd, void *buf, size_t len, off_t off);

/* Writes up to len bytes from buf at offset off (pwrite(2)); off < 0: at the file
 * position, which moves (write(2); with O_APPEND, at the end). Returns the count or
 * -errno. Made in pieces as edo_fs_pread is; it stops early only at an error (a full
 * disk: the count written so far, then -ENOSPC from the next call) or an abort. */
ssize_t edo_fs_pwrite(int fd, const void *buf, size_t len, off_t off);

/* Reads exactly len bytes from offset off (off < 0: at the file position), in as many
 * reads as it takes. Returns 0 when all arrived, -ENODATA if the file ended first, else
 * -errno. If done is not NULL, *done is the number of bytes stored in buf either way. */
int edo_fs_pread_exact(int fd, void *buf, size_t len, off_t off, size_t *done);

/* Writes all len bytes at offset off (off < 0: at the file position). Returns 0 or
 * -errno; *done (if not NULL) is how many bytes were written either way. */
int edo_fs_pwrite_all(int fd, const void *buf, size_t len, off_t off, size_t *done);

/* Makes fd's data and metadata durable (fsync(2)); edo_fs_fdatasync: the data and only
 * the metadata needed to read it back (fdatasync(2): not the times). 0 or -errno. */
int edo_fs_fsync(int fd);
int edo_fs_fdatasync(int fd);

/* ---------------------------------------------------------------------------------------- */
/* Whole files                                                                              */

/* Reads the whole file at path into a buffer from malloc, with a NUL byte after the
 * content (not counted in *len), so that a text file can be used as a string. The file
 * is read to its end, whatever its size said (files in /proc say 0). More than max bytes:
 * -EFBIG and nothing is returned (max SIZE_MAX: no limit but memory). On success *data is
 * the caller's to free(); on failure it is set to NULL and *len to 0. Returns 0 or -errno. */
int edo_fs_read_file(const char *path, void **data, size_t *len, size_t max);

/* Creates path (with permissions mode, before the umask) or truncates it, and writes the
 * len bytes of data into it. Returns 0 when all were written and the file closed without
 * error, else -errno, and the file then holds an unknown part of data. Nothing is made
 * durable (no fsync), and a reader may see the file part-written: to replace a file
 * whole, write a temporary one beside it, edo_fs_fsync it and edo_fs_rename it over (and
 * for the rename itself to survive a crash, edo_fs_fsync the directory, opened with
 * O_RDONLY | O_DIRECTORY). */
int edo_fs_write_file(const char *path, const void *data, size_t len, mode_t mode);

/* ---------------------------------------------------------------------------------------- */
/* Metadata and names                                                                       */

/* The attributes of path (following symbolic links: stat(2)), of the link itself
 * (edo_fs_lstat: lstat(2)), or of an open descriptor (edo_fs_fstat: fstat(2)), into *st.
 * Every field is filled, times to the nanosecond. 0 or -errno. */
int edo_fs_stat(const char *path, struct stat *st);
int edo_fs_lstat(const char *path, struct stat *st);
int edo_fs_fstat(int fd, struct stat *st);

/* rename(2): moves from to `to`, replacing what `to` named (atomically, on one file
 * system). 0 or -errno (-EXDEV across file systems). */
int edo_fs_rename(const char *from, const char *to);

/* unlink(2): removes the name path (not a directory: -EISDIR). 0 or -errno. */
int edo_fs_unlink(const char *path);

/* mkdir(2) and rmdir(2) (the directory must be empty: -ENOTEMPTY). 0 or -errno. */
int edo_fs_mkdir(const char *path, mode_t mode);
int edo_fs_rmdir(const char *path);

/* ---------------------------------------------------------------------------------------- */
/* Directories                                                                              */

/* One entry of a directory listing. */
typedef struct edo_fs_entry {
    const char *name;   /* the entry's name, without the directory */
    uint64_t ino;       /* its inode number */
    unsigned char type; /* DT_REG, DT_DIR, DT_LNK, ... from <dirent.h>, or DT_UNKNOWN where
                         * the file system does not say: edo_fs_lstat then tells */
} edo_fs_entry;

/* Lists the directory at path: *entries is an array of *count entries ("." and ".." left
 * out), sorted by name (strcmp order, so output is reproducible), and is freed with one
 * edo_fs_list_free. The whole list is read in one go on the blocking pool (there is no
 * io_uring operation for it): one trip to a pool thread for the directory rather than one
 * per entry, and the caller can look at the list in any order, count it and sort it
 * without keeping a directory stream open across suspensions. A directory with millions
 * of entries takes memory in proportion. Returns 0 or -errno (-ENOTDIR, -ENOENT); on
 * failure *entries is NULL and *count 0. */
int edo_fs_list(const char *path, edo_fs_entry **entries, size_t *count);

/* Frees a list from edo_fs_list (NULL: nothing). Any thread. */
void edo_fs_list_free(edo_fs_entry *entries);

#endif
