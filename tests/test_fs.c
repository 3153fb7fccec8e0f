/*
 * Files (edo/fs.h): every call and its errors, stat field by field against the system's,
 * directory listings, the whole-file helpers' edge cases, a 256 MiB copy with its content
 * verified, a thousand tasks reading files at once, reads cut short by an abort or a
 * deadline whose buffers are then freed and reused, far more operations at once than a
 * ring has submission entries, tasks aborted in the middle of copies, and stdin and
 * stdout (pipes, a regular file) through edo_io_wrap.
 *
 * The same program runs on either backend (EDO_BACKEND=epoll or uring); where they differ
 * by design (a pool thread cannot be interrupted, an io_uring read on a FIFO can), the
 * case says which behaviour it checks. Files go to TMPDIR (else /tmp), in a directory of
 * each case's own that it removes.
 *
 * edo-test: timeout=600
 */
#include "harness.h"

#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/time.h>

/* ---------------------------------------------------------------------------------------- */
/* Scratch directories and content                                                          */

static char scratch[512];

static void scratch_make(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(scratch, sizeof scratch, "%s/edo-test-fs-XXXXXX", base);
    CHECK_MSG(mkdtemp(scratch) != NULL, "mkdtemp %s: %s", scratch, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void scratch_remove(void)
{
    CHECK_SYS(nftw(scratch, rm_one, 64, FTW_DEPTH | FTW_PHYS));
}

/* Runs root in a runtime made with opts (NULL: the defaults) in a fresh scratch directory. */
static void run_in_scratch(const edo_runtime_opts *opts, void *(*root)(void *))
{
    scratch_make();
    test_run_opts(opts, root, NULL);
    scratch_remove();
}

/* dir/name into buf. */
static const char *path_join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    CHECK_MSG(n >= 0 && (size_t)n < len, "path %s/%s too long", dir, name);
    return buf;
}

/* scratch/name into buf. */
static const char *in_scratch(char *buf, size_t len, const char *name)
{
    return path_join(buf, len, scratch, name);
}

/* The content every test file has at byte offset off: each 8-byte word depends on its
 * own offset and on `salt` (which file), so a block that lands in the wrong place, twice,
 * or in the wrong file shows, and zeros never pass for data. */
static uint64_t pattern_word(uint64_t salt, uint64_t word)
{
    uint64_t z = salt * 0x9e3779b97f4a7c15u + word + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Fills buf with the content of [off, off + len); off and len multiples of 8. */
static void pattern_fill(uint64_t salt, uint64_t off, void *buf, size_t len)
{
    uint64_t *w = buf;
    for (size_t i = 0; i < len / 8; i++)
        w[i] = pattern_word(salt, off / 8 + i);
}

/* Index of the first word of buf that is not the content at off, or SIZE_MAX. */
static size_t pattern_check(uint64_t salt, uint64_t off, const void *buf, size_t len)
{
    const uint64_t *w = buf;
    for (size_t i = 0; i < len / 8; i++)
        if (w[i] != pattern_word(salt, off / 8 + i))
            return i;
    return SIZE_MAX;
}

/* Writes a file of len bytes (a multiple of 8) of pattern `salt` with plain system calls. */
static void pattern_file(const char *path, uint64_t salt, size_t len)
{
    int fd = (int)CHECK_SYS(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    CHECK(buf != NULL);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        pattern_fill(salt, off, buf, n);
        CHECK_EQ(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    }
    free(buf);
    CHECK_SYS(close(fd));
}

/* Writes path's pages back and drops them from the page cache, so that reads go to the disk
 * (the ring's operation or the pool) rather than being answered from the cache at once.
 * Nothing happens on tmpfs, whose pages are the file. */
static void drop_cache(const char *path)
{
    int fd = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    CHECK_SYS(fdatasync(fd));
    CHECK_OK(-posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    close(fd);
}

/* Checks a whole file against pattern `salt` and length len, with plain system calls. */
static void pattern_verify(const char *path, uint64_t salt, size_t len)
{
    int fd = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    struct stat st;
    CHECK_SYS(fstat(fd, &st));
    CHECK_EQ((uint64_t)st.st_size, (uint64_t)len);
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    CHECK(buf != NULL);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        CHECK_EQ(pread(fd, buf, n, (off_t)off), (ssize_t)n);
        size_t bad = pattern_check(salt, off, buf, n);
        CHECK_MSG(bad == SIZE_MAX, "%s: wrong word at byte %zu", path, off + bad * 8);
    }
    free(buf);
    CHECK_SYS(close(fd));
}

static bool on_uring(void)
{
    return edo_runtime_backend(edo_runtime_current()) == EDO_BACKEND_URING;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Outside a task every call refuses                                                        */

static void case_outside_task(void)
{
    struct stat st;
    char buf[8];
    size_t done = 1;
    void *data = (void *)1;
    size_t len = 1;
    edo_fs_entry *ents = (void *)1;
    CHECK_ERR(edo_fs_open("/", O_RDONLY, 0), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_close(0), -EDO_ENOTASK);
    CHECK(fd_open(0)); /* and stdin was not closed */
    CHECK_ERR(edo_fs_pread(0, buf, sizeof buf, 0), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_pwrite(1, buf, sizeof buf, 0), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_pread_exact(0, buf, sizeof buf, 0, &done), -EDO_ENOTASK);
    CHECK_EQ(done, 0u);
    CHECK_ERR(edo_fs_pwrite_all(1, buf, sizeof buf, 0, NULL), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_fsync(1), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_fdatasync(1), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_stat("/", &st), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_lstat("/", &st), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_fstat(0, &st), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_rename("/a", "/b"), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_unlink("/a"), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_mkdir("/a", 0700), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_rmdir("/a"), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_read_file("/proc/self/status", &data, &len, SIZE_MAX), -EDO_ENOTASK);
    CHECK(data == NULL && len == 0);
    CHECK_ERR(edo_fs_write_file("/a", "x", 1, 0600), -EDO_ENOTASK);
    CHECK_ERR(edo_fs_list("/", &ents, &len), -EDO_ENOTASK);
    CHECK(ents == NULL && len == 0);
    edo_fs_list_free(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* open, close, pread, pwrite and their errors                                              */

static void *rw_root(void *arg)
{
    char p[600], q[600];
    const char *file = in_scratch(p, sizeof p, "f");
    CHECK_ERR(edo_fs_open(in_scratch(q, sizeof q, "missing"), O_RDONLY, 0), -ENOENT);
    int fd = (int)CHECK_OK(edo_fs_open(file, O_RDWR | O_CREAT | O_EXCL, 0600));
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK_ERR(edo_fs_open(file, O_RDWR | O_CREAT | O_EXCL, 0600), -EEXIST);
    CHECK_ERR(edo_fs_open(scratch, O_WRONLY, 0), -EISDIR);
    path_join(q, sizeof q, file, "x");
    CHECK_ERR(edo_fs_open(q, O_RDONLY, 0), -ENOTDIR);

    /* At offsets, in any order; the file position does not move. */
    char a[4096], b[4096];
    test_rng r = test_rng_new(1);
    test_rng_fill(&r, a, sizeof a);
    CHECK_EQ(edo_fs_pwrite(fd, a + 2048, 2048, 2048), 2048);
    CHECK_EQ(edo_fs_pwrite(fd, a, 2048, 0), 2048);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);
    memset(b, 0, sizeof b);
    CHECK_EQ(edo_fs_pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_EQ(edo_fs_pread(fd, b, 100, 4096), 0);  /* at the end */
    CHECK_EQ(edo_fs_pread(fd, b, 100, 4000), 96); /* short at the end */
    CHECK(memcmp(b, a + 4000, 96) == 0);
    CHECK_EQ(edo_fs_pread(fd, b, 0, 0), 0);

    /* off < 0: at the file position, which moves. */
    CHECK_EQ(lseek(fd, 1000, SEEK_SET), 1000);
    CHECK_EQ(edo_fs_pread(fd, b, 24, -1), 24);
    CHECK(memcmp(b, a + 1000, 24) == 0);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 1024);
    CHECK_EQ(edo_fs_pwrite(fd, "abcd", 4, -1), 4);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 1028);
    CHECK_EQ(edo_fs_pread(fd, b, 4, 1024), 4);
    CHECK(memcmp(b, "abcd", 4) == 0);

    /* pread_exact and pwrite_all, at offsets and at the position. */
    size_t done = 99;
    CHECK_OK(edo_fs_pwrite_all(fd, a, sizeof a, 4096, &done));
    CHECK_EQ(done, sizeof a);
    CHECK_OK(edo_fs_pread_exact(fd, b, sizeof b, 4096, &done));
    CHECK_EQ(done, sizeof b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_ERR(edo_fs_pread_exact(fd, b, 200, 8192 - 100, &done), -ENODATA);
    CHECK_EQ(done, 100u);
    CHECK_EQ(lseek(fd, 8192 - 10, SEEK_SET), 8192 - 10);
    CHECK_ERR(edo_fs_pread_exact(fd, b, 20, -1, &done), -ENODATA);
    CHECK_EQ(done, 10u);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_OK(edo_fs_pwrite_all(fd, "0123456789", 10, -1, NULL));
    CHECK_OK(edo_fs_pread_exact(fd, b, 10, -1, NULL));
    CHECK(memcmp(b, a + 10, 10) == 0);
    CHECK_OK(edo_fs_pread_exact(fd, b, 0, 0, &done));
    CHECK_EQ(done, 0u);

    CHECK_OK(edo_fs_fsync(fd));
    CHECK_OK(edo_fs_fdatasync(fd));

    /* A read-only descriptor refuses writes, a write-only one reads. */
    int ro = (int)CHECK_OK(edo_fs_open(file, O_RDONLY, 0));
    CHECK_ERR(edo_fs_pwrite(ro, "x", 1, 0), -EBADF);
    CHECK_OK(edo_fs_close(ro));
    int wo = (int)CHECK_OK(edo_fs_open(file, O_WRONLY | O_APPEND, 0));
    CHECK_ERR(edo_fs_pread(wo, b, 1, 0), -EBADF);
    CHECK_EQ(edo_fs_pwrite(wo, "tail", 4, -1), 4); /* O_APPEND: at the end */
    CHECK_OK(edo_fs_close(wo));
    CHECK_EQ(edo_fs_pread(fd, b, 10, 8192), 4);
    CHECK(memcmp(b, "tail", 4) == 0);

    /* A directory reads as -EISDIR. */
    int dfd = (int)CHECK_OK(edo_fs_open(scratch, O_RDONLY | O_DIRECTORY, 0));
    CHECK_ERR(edo_fs_pread(dfd, b, 1, 0), -EISDIR);
    CHECK_OK(edo_fs_close(dfd));

    /* Closed descriptors. */
    CHECK_OK(edo_fs_close(fd));
    CHECK(!fd_open(fd));
    CHECK_ERR(edo_fs_close(fd), -EBADF);
    CHECK_ERR(edo_fs_pread(fd, b, 1, 0), -EBADF);
    CHECK_ERR(edo_fs_pwrite(fd, b, 1, 0), -EBADF);
    CHECK_ERR(edo_fs_fsync(fd), -EBADF);
    CHECK_ERR(edo_fs_fdatasync(fd), -EBADF);
    CHECK_ERR(edo_fs_pread(-1, b, 1, 0), -EBADF);
    CHECK_ERR(edo_fs_pread_exact(-1, b, 1, 0, &done), -EBADF);
    CHECK_EQ(done, 0u);
    CHECK_ERR(edo_fs_pwrite_all(-1, b, 1, 0, &done), -EBADF);
    CHECK_ERR(edo_fs_close(-1), -EBADF);
    CHECK_ERR(edo_fs_open(NULL, O_RDONLY, 0), -EINVAL);
    (void)arg;
    return NULL;
}

static void case_read_write(void)
{
    run_in_scratch(NULL, rw_root);
}

/* ---------------------------------------------------------------------------------------- */
/* stat, lstat, fstat: every field as the system's                                          */

static void same_stat(const struct stat *a, const struct stat *b)
{
    CHECK_EQ((uint64_t)a->st_dev, (uint64_t)b->st_dev);
    CHECK_EQ((uint64_t)a->st_ino, (uint64_t)b->st_ino);
    CHECK_EQ((uint64_t)a->st_mode, (uint64_t)b->st_mode);
    CHECK_EQ((uint64_t)a->st_nlink, (uint64_t)b->st_nlink);
    CHECK_EQ((uint64_t)a->st_uid, (uint64_t)b->st_uid);
    CHECK_EQ((uint64_t)a->st_gid, (uint64_t)b->st_gid);
    CHECK_EQ((uint64_t)a->st_rdev, (uint64_t)b->st_rdev);
    CHECK_EQ((int64_t)a->st_size, (int64_t)b->st_size);
    CHECK_EQ((int64_t)a->st_blksize, (int64_t)b->st_blksize);
    CHECK_EQ((int64_t)a->st_blocks, (int64_t)b->st_blocks);
    CHECK_EQ((int64_t)a->st_atim.tv_sec, (int64_t)b->st_atim.tv_sec);
    CHECK_EQ((int64_t)a->st_atim.tv_nsec, (int64_t)b->st_atim.tv_nsec);
    CHECK_EQ((int64_t)a->st_mtim.tv_sec, (int64_t)b->st_mtim.tv_sec);
    CHECK_EQ((int64_t)a->st_mtim.tv_nsec, (int64_t)b->st_mtim.tv_nsec);
    CHECK_EQ((int64_t)a->st_ctim.tv_sec, (int64_t)b->st_ctim.tv_sec);
    CHECK_EQ((int64_t)a->st_ctim.tv_nsec, (int64_t)b->st_ctim.tv_nsec);
}

static void *stat_root(void *arg)
{
    char p[600], l[600], q[600];
    const char *file = in_scratch(p, sizeof p, "f");
    const char *link = in_scratch(l, sizeof l, "l");
    pattern_file(file, 7, 12345 & ~7);
    /* Times with nanoseconds that a truncating conversion would lose. */
    struct timespec times[2] = { { 1000000000, 123456789 }, { 1100000000, 987654321 } };
    CHECK_SYS(utimensat(AT_FDCWD, file, times, 0));
    CHECK_SYS(symlink("f", link));

    struct stat mine, sys;
    CHECK_OK(edo_fs_stat(file, &mine));
    CHECK_SYS(stat(file, &sys));
    same_stat(&mine, &sys);
    CHECK_EQ((int64_t)mine.st_mtim.tv_nsec, 987654321);
    CHECK_EQ((int64_t)mine.st_atim.tv_nsec, 123456789);
    CHECK(S_ISREG(mine.st_mode));

    CHECK_OK(edo_fs_stat(link, &mine)); /* follows the link */
    same_stat(&mine, &sys);
    CHECK_OK(edo_fs_lstat(link, &mine)); /* the link itself */
    CHECK_SYS(lstat(link, &sys));
    same_stat(&mine, &sys);
    CHECK(S_ISLNK(mine.st_mode));

    int fd = (int)CHECK_OK(edo_fs_open(file, O_RDONLY, 0));
    CHECK_OK(edo_fs_fstat(fd, &mine));
    CHECK_SYS(fstat(fd, &sys));
    same_stat(&mine, &sys);
    CHECK_OK(edo_fs_close(fd));
    CHECK_ERR(edo_fs_fstat(fd, &mine), -EBADF);

    CHECK_OK(edo_fs_stat(scratch, &mine));
    CHECK_SYS(stat(scratch, &sys));
    same_stat(&mine, &sys);
    CHECK(S_ISDIR(mine.st_mode));

    /* A character device: st_rdev's major and minor. */
    CHECK_OK(edo_fs_stat("/dev/null", &mine));
    CHECK_SYS(stat("/dev/null", &sys));
    same_stat(&mine, &sys);

    CHECK_ERR(edo_fs_stat(in_scratch(q, sizeof q, "missing"), &mine), -ENOENT);
    path_join(q, sizeof q, file, "x");
    CHECK_ERR(edo_fs_stat(q, &mine), -ENOTDIR);
    CHECK_ERR(edo_fs_lstat(q, &mine), -ENOTDIR);
    CHECK_SYS(symlink("missing", in_scratch(q, sizeof q, "dangling")));
    CHECK_ERR(edo_fs_stat(q, &mine), -ENOENT);
    CHECK_OK(edo_fs_lstat(q, &mine));
    CHECK_ERR(edo_fs_stat(NULL, &mine), -EINVAL);
    CHECK_ERR(edo_fs_stat(file, NULL), -EINVAL);
    (void)arg;
    return NULL;
}

static void case_stat(void)
{
    run_in_scratch(NULL, stat_root);
}

/* ---------------------------------------------------------------------------------------- */
/* rename, unlink, mkdir, rmdir                                                             */

static void *names_root(void *arg)
{
    char a[600], b[600], d[600], e[600], q[600];
    in_scratch(a, sizeof a, "a");
    in_scratch(b, sizeof b, "b");
    in_scratch(d, sizeof d, "dir");
    path_join(e, sizeof e, d, "inner");
    struct stat st;

    CHECK_OK(edo_fs_mkdir(d, 0750));
    CHECK_SYS(stat(d, &st));
    CHECK(S_ISDIR(st.st_mode));
    mode_t um = umask(0);
    umask(um);
    CHECK_EQ((unsigned)(st.st_mode & 0777), (unsigned)(0750 & ~um));
    CHECK_ERR(edo_fs_mkdir(d, 0700), -EEXIST);
    CHECK_ERR(edo_fs_mkdir(in_scratch(q, sizeof q, "no/such"), 0700), -ENOENT);
    CHECK_OK(edo_fs_mkdir(e, 0700));
    CHECK_ERR(edo_fs_rmdir(d), -ENOTEMPTY);

    CHECK_OK(edo_fs_write_file(a, "hello", 5, 0600));
    CHECK_ERR(edo_fs_rmdir(a), -ENOTDIR);
    CHECK_ERR(edo_fs_unlink(d), -EISDIR);
    path_join(q, sizeof q, a, "x");
    CHECK_ERR(edo_fs_mkdir(q, 0700), -ENOTDIR);

    /* rename moves, replaces, and fails like rename(2). */
    CHECK_OK(edo_fs_rename(a, b));
    CHECK_ERR(stat(a, &st), -1);
    CHECK_SYS(stat(b, &st));
    CHECK_EQ((int64_t)st.st_size, 5);
    CHECK_ERR(edo_fs_rename(a, b), -ENOENT);
    CHECK_OK(edo_fs_write_file(a, "other!", 6, 0600));
    CHECK_OK(edo_fs_rename(a, b)); /* over an existing file */
    CHECK_SYS(stat(b, &st));
    CHECK_EQ((int64_t)st.st_size, 6);
    CHECK_ERR(edo_fs_rename(b, d), -EISDIR); /* a file over a directory */
    CHECK_ERR(edo_fs_rename(d, e), -EINVAL); /* a directory into itself */

    CHECK_OK(edo_fs_unlink(b));
    CHECK_ERR(edo_fs_unlink(b), -ENOENT);
    CHECK_OK(edo_fs_rmdir(e));
    CHECK_OK(edo_fs_rmdir(d));
    CHECK_ERR(edo_fs_rmdir(d), -ENOENT);
    CHECK_ERR(edo_fs_rename(NULL, b), -EINVAL);
    CHECK_ERR(edo_fs_rename(a, NULL), -EINVAL);
    (void)arg;
    return NULL;
}

static void case_names(void)
{
    run_in_scratch(NULL, names_root);
}

/* ---------------------------------------------------------------------------------------- */
/* Directory listings                                                                       */

static void *list_root(void *arg)
{
    char p[600], q[600];
    int nfiles = 300;
    for (int i = nfiles - 1; i >= 0; i--) { /* made in reverse: the list sorts */
        snprintf(q, sizeof q, "file%04d", i);
        CHECK_OK(edo_fs_write_file(in_scratch(p, sizeof p, q), q, strlen(q), 0600));
    }
    CHECK_OK(edo_fs_mkdir(in_scratch(p, sizeof p, "sub"), 0700));
    CHECK_SYS(symlink("file0000", in_scratch(p, sizeof p, "zlink")));
    /* A long name, and one with a dot first. */
    char longname[256];
    memset(longname, 'n', 255);
    longname[255] = '\0';
    CHECK_OK(edo_fs_write_file(in_scratch(p, sizeof p, longname), "", 0, 0600));
    CHECK_OK(edo_fs_write_file(in_scratch(p, sizeof p, ".hidden"), "", 0, 0600));

    edo_fs_entry *ents;
    size_t n;
    CHECK_OK(edo_fs_list(scratch, &ents, &n));
    CHECK_EQ(n, (size_t)nfiles + 4);
    CHECK_STR_EQ(ents[0].name, ".hidden");
    for (int i = 0; i < nfiles; i++) {
        snprintf(q, sizeof q, "file%04d", i);
        CHECK_STR_EQ(ents[1 + i].name, q);
    }
    CHECK_STR_EQ(ents[nfiles + 1].name, longname);
    CHECK_STR_EQ(ents[nfiles + 2].name, "sub");
    CHECK_STR_EQ(ents[nfiles + 3].name, "zlink");
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        CHECK_SYS(lstat(in_scratch(p, sizeof p, ents[i].name), &st));
        CHECK_EQ(ents[i].ino, (uint64_t)st.st_ino);
        if (ents[i].type != DT_UNKNOWN) /* some file systems do not say */
            CHECK_EQ((unsigned)ents[i].type, (unsigned)IFTODT(st.st_mode));
    }
    edo_fs_list_free(ents);

    /* An empty directory: no entries, still a list to free. */
    CHECK_OK(edo_fs_list(in_scratch(p, sizeof p, "sub"), &ents, &n));
    CHECK_EQ(n, 0u);
    edo_fs_list_free(ents);

    CHECK_ERR(edo_fs_list(in_scratch(p, sizeof p, "file0001"), &ents, &n), -ENOTDIR);
    CHECK(ents == NULL && n == 0);
    CHECK_ERR(edo_fs_list(in_scratch(p, sizeof p, "missing"), &ents, &n), -ENOENT);
    CHECK_ERR(edo_fs_list(NULL, &ents, &n), -EINVAL);
    (void)arg;
    return NULL;
}

static void case_list(void)
{
    run_in_scratch(NULL, list_root);
}

/* ---------------------------------------------------------------------------------------- */
/* Whole files: empty, at the limit, over it, bigger than they say, errors                  */

static void *whole_root(void *arg)
{
    char p[600], q[600];
    const char *file = in_scratch(p, sizeof p, "w");
    void *data;
    size_t len;

    /* Empty: a buffer all the same, holding the NUL. */
    CHECK_OK(edo_fs_write_file(file, NULL, 0, 0640));
    struct stat st;
    CHECK_SYS(stat(file, &st));
    mode_t um = umask(0);
    umask(um);
    CHECK_EQ((unsigned)(st.st_mode & 0777), (unsigned)(0640 & ~um));
    CHECK_EQ((int64_t)st.st_size, 0);
    CHECK_OK(edo_fs_read_file(file, &data, &len, 0));
    CHECK(data != NULL);
    CHECK_EQ(len, 0u);
    CHECK_EQ(((char *)data)[0], '\0');
    free(data);

    /* Content of several sizes; the limit is inclusive. */
    size_t sizes[] = { 1, 7, 4095, 4096, 4097, 1 << 20, (1 << 20) + 3 };
    char *src = malloc((1 << 20) + 8);
    CHECK(src != NULL);
    test_rng r = test_rng_new(2);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t sz = sizes[i];
        test_rng_fill(&r, src, sz);
        CHECK_OK(edo_fs_write_file(file, src, sz, 0600));
        CHECK_OK(edo_fs_read_file(file, &data, &len, sz));
        CHECK_EQ(len, sz);
        CHECK(memcmp(data, src, sz) == 0);
        CHECK_EQ(((char *)data)[sz], '\0');
        free(data);
        CHECK_ERR(edo_fs_read_file(file, &data, &len, sz - 1), -EFBIG);
        CHECK(data == NULL && len == 0);
        CHECK_OK(edo_fs_read_file(file, &data, &len, SIZE_MAX));
        CHECK_EQ(len, sz);
        free(data);
    }
    /* Truncated by the next write_file. */
    CHECK_OK(edo_fs_write_file(file, "short", 5, 0600));
    CHECK_OK(edo_fs_read_file(file, &data, &len, 100));
    CHECK_EQ(len, 5u);
    CHECK_STR_EQ((char *)data, "short");
    free(data);
    free(src);

    /* A file that says it is empty and is not: read to its end, and the limit holds. */
    CHECK_OK(edo_fs_read_file("/proc/self/status", &data, &len, SIZE_MAX));
    CHECK_GT(len, 100u);
    CHECK(strstr(data, "Pid:") != NULL);
    CHECK_EQ(strlen(data), len);
    free(data);
    CHECK_ERR(edo_fs_read_file("/proc/self/status", &data, &len, 50), -EFBIG);
    CHECK(data == NULL);

    CHECK_ERR(edo_fs_read_file(scratch, &data, &len, SIZE_MAX), -EISDIR);
    CHECK_ERR(edo_fs_read_file(in_scratch(q, sizeof q, "missing"), &data, &len, 10), -ENOENT);
    CHECK_ERR(edo_fs_write_file(scratch, "x", 1, 0600), -EISDIR);
    CHECK_ERR(edo_fs_write_file(in_scratch(q, sizeof q, "no/such"), "x", 1, 0600), -ENOENT);
    CHECK_ERR(edo_fs_write_file(file, NULL, 1, 0600), -EINVAL);
    CHECK_ERR(edo_fs_read_file(file, NULL, &len, 1), -EINVAL);
    (void)arg;
    return NULL;
}

static void case_whole_files(void)
{
    run_in_scratch(NULL, whole_root);
}

/* ---------------------------------------------------------------------------------------- */
/* An abort or a deadline before the call: nothing is done, but a close still closes        */

static void *refused_root(void *arg)
{
    char f[600], p[600];
    const char *file = in_scratch(f, sizeof f, "r");
    struct stat st;
    int fd = (int)CHECK_OK(edo_fs_open(file, O_RDWR | O_CREAT, 0600));

    int64_t scope = edo_deadline_begin(edo_now() - 1);
    CHECK_ERR(edo_fs_pwrite(fd, "x", 1, 0), -ETIMEDOUT);
    CHECK_ERR(edo_fs_mkdir(in_scratch(p, sizeof p, "d"), 0700), -ETIMEDOUT);
    CHECK_ERR(stat(p, &st), -1);
    CHECK_OK(edo_fs_close(fd)); /* closes all the same */
    CHECK(!fd_open(fd));
    edo_deadline_end(scope);

    fd = (int)CHECK_OK(edo_fs_open(file, O_RDWR, 0));
    edo_abort(edo_self());
    CHECK_ERR(edo_fs_pwrite(fd, "x", 1, 0), -ECANCELED);
    CHECK_ERR(edo_fs_write_file(in_scratch(p, sizeof p, "w"), "x", 1, 0600), -ECANCELED);
    CHECK_ERR(stat(p, &st), -1);
    void *data = (void *)1;
    size_t len = 1;
    CHECK_ERR(edo_fs_read_file(file, &data, &len, 10), -ECANCELED);
    CHECK(data == NULL);
    edo_fs_entry *ents;
    CHECK_ERR(edo_fs_list(scratch, &ents, &len), -ECANCELED);
    CHECK_OK(edo_fs_close(fd));
    CHECK(!fd_open(fd));
    CHECK_SYS(stat(file, &st));
    CHECK_EQ((int64_t)st.st_size, 0);
    (void)arg;
    return NULL;
}

static void case_refused(void)
{
    scratch_make();
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, NULL));
    CHECK_ERR(edo_block_on(rt, refused_root, NULL, NULL), -EDO_EABORTED);
    edo_runtime_free(rt);
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* A 256 MiB file copied through edo, several chunks in flight, content verified            */

#define COPY_CHUNK (1 << 20)

typedef struct copier {
    const char *from, *to;
    int in, out;
    uint64_t start, end; /* the part this task copies */
    uint64_t copied;
    int rc;
} copier;

static void *copy_part(void *arg)
{
    copier *c = arg;
    char *buf = malloc(COPY_CHUNK);
    CHECK(buf != NULL);
    for (uint64_t off = c->start; off < c->end;) {
        size_t n = c->end - off < COPY_CHUNK ? (size_t)(c->end - off) : COPY_CHUNK;
        size_t got = 0;
        c->rc = edo_fs_pread_exact(c->in, buf, n, (off_t)off, &got);
        if (c->rc < 0)
            break;
        size_t put = 0;
        c->rc = edo_fs_pwrite_all(c->out, buf, n, (off_t)off, &put);
        c->copied += put;
        if (c->rc < 0)
            break;
        off += n;
    }
    free(buf);
    return NULL;
}

static void *copy_root(void *arg)
{
    copier *whole = arg;
    whole->in = (int)CHECK_OK(edo_fs_open(whole->from, O_RDONLY, 0));
    whole->out = (int)CHECK_OK(edo_fs_open(whole->to, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    struct stat st;
    CHECK_OK(edo_fs_fstat(whole->in, &st));
    CHECK_EQ((uint64_t)st.st_size, whole->end);
    /* Four tasks, each a quarter: four chunks in flight at once, landing out of order. */
    enum { PARTS = 4 };
    copier part[PARTS];
    edo_task *t[PARTS];
    uint64_t quarter = (whole->end / PARTS + 7) & ~(uint64_t)7;
    for (int i = 0; i < PARTS; i++) {
        part[i] = *whole;
        part[i].start = quarter * (uint64_t)i;
        part[i].end = i == PARTS - 1 ? whole->end : quarter * (uint64_t)(i + 1);
        CHECK_OK(edo_spawn(&t[i], copy_part, &part[i]));
    }
    for (int i = 0; i < PARTS; i++) {
        CHECK_OK(edo_join(t[i], NULL));
        CHECK_OK(part[i].rc);
        CHECK_EQ(part[i].copied, part[i].end - part[i].start);
    }
    CHECK_OK(edo_fs_fdatasync(whole->out));
    CHECK_OK(edo_fs_close(whole->in));
    CHECK_OK(edo_fs_close(whole->out));
    return NULL;
}

static void case_copy_256m(void)
{
    /* 256 MiB: the copy moves the data in 1 MiB system calls, but checking its pattern is
     * dear under the sanitizers, which copy less. */
    size_t size = (size_t)TEST_SCALE(256, 128, 64) << 20;
    scratch_make();
    char from[600], to[600];
    in_scratch(from, sizeof from, "src");
    in_scratch(to, sizeof to, "dst");
    pattern_file(from, 42, size);
    drop_cache(from);
    copier c = { .from = from, .to = to, .start = 0, .end = size };
    test_run(copy_root, &c);
    pattern_verify(to, 42, size);
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* A thousand tasks reading files at once, each checking what it read                       */

#define MANY_FILES 50

typedef struct reader {
    int index;
    int rc;
} reader;

static char many_path[MANY_FILES][600];

static size_t many_size(int file)
{
    return 4096 + (size_t)file * 1000 * 8; /* 4 KiB to ~400 KiB */
}

static void *many_reader(void *arg)
{
    reader *rd = arg;
    int f = rd->index % MANY_FILES;
    size_t size = many_size(f);
    if (rd->index % 2) {
        void *data;
        size_t len;
        rd->rc = edo_fs_read_file(many_path[f], &data, &len, SIZE_MAX);
        if (rd->rc == 0) {
            CHECK_EQ(len, size);
            CHECK(pattern_check((uint64_t)f, 0, data, len) == SIZE_MAX);
            free(data);
        }
        return NULL;
    }
    /* Open, read a random part with pread_exact, close. */
    test_rng r = test_rng_new(1000 + (uint64_t)rd->index);
    uint64_t off = test_rng_range(&r, 0, size / 8 - 1) * 8;
    size_t len = (size_t)test_rng_range(&r, 1, (size - off) / 8) * 8;
    char *buf = malloc(len);
    CHECK(buf != NULL);
    int fd = edo_fs_open(many_path[f], O_RDONLY, 0);
    CHECK_OK(fd);
    rd->rc = edo_fs_pread_exact(fd, buf, len, (off_t)off, NULL);
    CHECK_OK(edo_fs_close(fd));
    if (rd->rc == 0)
        CHECK(pattern_check((uint64_t)f, off, buf, len) == SIZE_MAX);
    free(buf);
    return NULL;
}

static void *many_root(void *arg)
{
    int n = (int)INT(arg);
    reader *rd = calloc((size_t)n, sizeof *rd);
    edo_task **t = calloc((size_t)n, sizeof *t);
    CHECK(rd && t);
    for (int i = 0; i < n; i++) {
        rd[i].index = i;
        CHECK_OK(edo_spawn(&t[i], many_reader, &rd[i]));
    }
    for (int i = 0; i < n; i++) {
        CHECK_OK(edo_join(t[i], NULL));
        CHECK_OK(rd[i].rc);
    }
    free(rd);
    free(t);
    return NULL;
}

static void case_many_readers(void)
{
    scratch_make();
    for (int f = 0; f < MANY_FILES; f++) {
        char name[32];
        snprintf(name, sizeof name, "m%02d", f);
        in_scratch(many_path[f], sizeof many_path[f], name);
        pattern_file(many_path[f], (uint64_t)f, many_size(f));
        drop_cache(many_path[f]); /* the first readers of each wait for the disk */
    }
    /* TSan makes each task's fiber dear (some 380 page faults): fewer there. */
    test_run_fds_closed(many_root, VAL(TEST_SCALE(1000, 500, 150)));
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* Reads cut short, buffers freed and reused                                                */

typedef struct waiter {
    int fd;
    char *buf;
    size_t len;
    bool by_deadline;
    ssize_t rc;      /* the pread's return */
    int after;       /* the next suspension's return */
    atomic_int step; /* 1: about to read */
} waiter;

static void *fifo_reader(void *arg)
{
    waiter *w = arg;
    int64_t scope = w->by_deadline ? edo_timeout_begin(50) : EDO_NEVER;
    atomic_store(&w->step, 1);
    w->rc = edo_fs_pread(w->fd, w->buf, w->len, -1);
    w->after = edo_yield();
    if (w->by_deadline) {
        w->after = edo_sleep(1000); /* the scope's deadline has passed */
        edo_deadline_end(scope);
    }
    return NULL;
}

/* Reads whatever the FIFO holds now, without waiting (plain system calls). */
static size_t fifo_drain(int fd, char *buf, size_t cap)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK_SYS(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0) {
            CHECK_MSG(n < 0 && errno == EAGAIN, "drain: %zd %s", n, strerror(errno));
            break;
        }
        got += (size_t)n;
    }
    CHECK_SYS(fcntl(fd, F_SETFL, fl));
    return got;
}

/* Spawns a fifo_reader on w and, once its read waits, cuts it short: an abort, or its own
 * 50 ms deadline (which may pass before it is seen parked). */
static edo_task *spawn_cut_reader(waiter *w)
{
    edo_task *t;
    CHECK_OK(edo_spawn(&t, fifo_reader, w));
    if (!w->by_deadline) {
        test_wait_parked(t, EDO_WAIT_READ);
        edo_abort(t);
    } else {
        test_wait_parked_or_done(t, EDO_WAIT_READ);
    }
    return t;
}

/* Joins a task that may have been aborted. */
static void join_aborted(edo_task *t, bool aborted)
{
    int rc = edo_join(t, NULL);
    if (aborted)
        CHECK_ERR(rc, -EDO_EABORTED);
    else
        CHECK_OK(rc);
}

static void *cancel_root(void *arg)
{
    char p[600];
    const char *fifo = in_scratch(p, sizeof p, "fifo");
    CHECK_SYS(mkfifo(fifo, 0600));
    /* O_RDWR: the open does not wait for a writer, and a read waits for data for ever
     * instead of seeing end of file. */
    int fd = (int)CHECK_OK(edo_fs_open(fifo, O_RDWR, 0));
    bool uring = on_uring();
    if (!uring)
        printf("    epoll backend: a read on the blocking pool cannot be interrupted, so the "
               "aborted read gets the data written after the abort (real result), and the "
               "buffer is freed once it has returned\n");
    int started = 0, taken_back = 0;
    for (int round = 0; round < 4; round++) {
        waiter w = { .fd = fd, .len = 4096, .by_deadline = round % 2 == 1 };
        w.buf = malloc(w.len);
        CHECK(w.buf != NULL);
        memset(w.buf, 0x11, w.len);
        edo_task *t = spawn_cut_reader(&w);
        if (w.by_deadline)
            CHECK_OK(edo_sleep(80)); /* past the reader's 50 ms deadline */
        char msg[64];
        int mlen = snprintf(msg, sizeof msg, "round %d: data written after the cut", round);
        if (uring) {
            /* The read is really in flight: cancelled, the buffer the caller's again. */
            join_aborted(t, !w.by_deadline);
            CHECK_ERR(w.rc, w.by_deadline ? -ETIMEDOUT : -ECANCELED);
            /* Freed and reused at once: nothing may write into it any more. */
            free(w.buf);
            char *again = malloc(4096);
            CHECK(again != NULL);
            memset(again, 0x5a, 4096);
            CHECK_EQ(write(fd, msg, (size_t)mlen), mlen);
            char back[128];
            CHECK_EQ(fifo_drain(fd, back, sizeof back), (size_t)mlen); /* nothing lost */
            CHECK(memcmp(back, msg, (size_t)mlen) == 0);
            for (int i = 0; i < 4096; i++)
                CHECK_EQ((unsigned char)again[i], 0x5au);
            free(again);
        } else {
            CHECK_EQ(write(fd, msg, (size_t)mlen), mlen);
            join_aborted(t, !w.by_deadline);
            if (w.rc >= 0) {
                /* It had started: the real result, and the abort at the next suspension. */
                CHECK_EQ(w.rc, mlen);
                CHECK(memcmp(w.buf, msg, (size_t)mlen) == 0);
                CHECK_ERR(w.after, w.by_deadline ? -ETIMEDOUT : -ECANCELED);
                started++;
            } else {
                /* Still in line for a thread: taken back, and the data left in the FIFO. */
                CHECK_ERR(w.rc, w.by_deadline ? -ETIMEDOUT : -ECANCELED);
                char back[128];
                CHECK_EQ(fifo_drain(fd, back, sizeof back), (size_t)mlen);
                taken_back++;
            }
            free(w.buf);
        }
    }
    if (!uring)
        printf("    %d reads had started and returned the data, %d were taken back unstarted\n",
               started, taken_back);
    CHECK_OK(edo_fs_close(fd));
    (void)arg;
    return NULL;
}

static void case_cancel_inflight(void)
{
    run_in_scratch(NULL, cancel_root);
}

/* The epoll backend's pool with its only thread busy: a read waiting in line is taken back
 * by an abort or a deadline, never runs, and its buffer can be freed at once. */
static atomic_int gate;

static void *hold_pool(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate))
        test_sleep_us(200);
    return NULL;
}

static void *queued_root(void *arg)
{
    if (on_uring()) {
        printf("    io_uring backend: file reads do not go through the pool; nothing to "
               "check\n");
        return NULL;
    }
    /* An empty FIFO: a regular file's cached pages would be read on the worker at once,
     * where an empty FIFO's read has to go to the pool. */
    char p[600];
    const char *fifo = in_scratch(p, sizeof p, "q");
    CHECK_SYS(mkfifo(fifo, 0600));
    int fd = (int)CHECK_OK(edo_fs_open(fifo, O_RDWR, 0));
    atomic_store(&gate, 0);
    edo_task *holder;
    CHECK_OK(edo_spawn_blocking(&holder, hold_pool, NULL));
    for (int round = 0; round < 2; round++) {
        waiter w = { .fd = fd, .len = 65536, .by_deadline = round == 1 };
        w.buf = malloc(w.len);
        CHECK(w.buf != NULL);
        edo_task *t = spawn_cut_reader(&w);
        join_aborted(t, !w.by_deadline);
        CHECK_ERR(w.rc, w.by_deadline ? -ETIMEDOUT : -ECANCELED);
        free(w.buf);
    }
    /* The pool is freed up; reads go through again, and none of the two taken back reads
     * anything now. */
    atomic_store(&gate, 1);
    CHECK_OK(edo_join(holder, NULL));
    static const char msg[] = "written once the pool is free";
    CHECK_EQ(write(fd, msg, sizeof msg), (ssize_t)sizeof msg);
    char buf[128];
    CHECK_OK(edo_fs_pread_exact(fd, buf, sizeof msg, -1, NULL));
    CHECK(memcmp(buf, msg, sizeof msg) == 0);
    CHECK_EQ(fifo_drain(fd, buf, sizeof buf), 0u);
    CHECK_OK(edo_fs_close(fd));
    (void)arg;
    return NULL;
}

static void case_cancel_queued(void)
{
    run_in_scratch(&(edo_runtime_opts){ .blocking_threads = 1 }, queued_root);
}

/* Shutdown with calls waiting in line for the pool (a directory listing uses the pool on
 * both backends): they are dropped or run, and either way their tasks end. */
static atomic_int listed_ok, listed_cancelled;
enum { LISTERS = 10 };

static void *lister(void *arg)
{
    edo_fs_entry *ents;
    size_t n;
    int rc = edo_fs_list(scratch, &ents, &n);
    if (rc == 0) {
        edo_fs_list_free(ents);
        atomic_fetch_add(&listed_ok, 1);
    } else {
        CHECK_ERR(rc, -ECANCELED);
        atomic_fetch_add(&listed_cancelled, 1);
    }
    (void)arg;
    return NULL;
}

/* Holds the pool's only thread until the shutdown has dealt with every lister (or 10 s,
 * and the checks below fail): a fixed time could run out first on a loaded machine. */
static void *slow_call(void *arg)
{
    (void)arg;
    int64_t t0 = test_clock_ms();
    while (atomic_load(&listed_ok) + atomic_load(&listed_cancelled) < LISTERS &&
           test_clock_ms() - t0 < 10000)
        test_sleep_us(1000);
    return NULL;
}

static void *shutdown_root(void *arg)
{
    CHECK_OK(edo_spawn_blocking(NULL, slow_call, NULL)); /* the pool's only thread */
    edo_task *t[LISTERS];
    for (int i = 0; i < LISTERS; i++)
        CHECK_OK(edo_spawn(&t[i], lister, NULL));
    for (int i = 0; i < LISTERS; i++) {
        test_wait_parked(t[i], EDO_WAIT_READ);
        edo_detach(t[i]);
    }
    (void)arg;
    return NULL; /* the runtime is freed with the listers still in line */
}

static void case_shutdown_queued(void)
{
    scratch_make();
    atomic_store(&listed_ok, 0);
    atomic_store(&listed_cancelled, 0);
    edo_runtime_opts o = { .blocking_threads = 1 };
    test_run_opts(&o, shutdown_root, NULL);
    CHECK_EQ(atomic_load(&listed_ok) + atomic_load(&listed_cancelled), LISTERS);
    CHECK_EQ(atomic_load(&listed_cancelled), LISTERS); /* none had started */
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* Far more operations at once than a ring's 256 submission entries                        */

#define BLOCK 4096

typedef struct blockio {
    int fd;
    int index;
    atomic_int *started;
    int rc;
} blockio;

static void *block_task(void *arg)
{
    blockio *b = arg;
    char buf[BLOCK], back[BLOCK];
    pattern_fill(77, (uint64_t)b->index * BLOCK, buf, BLOCK);
    atomic_fetch_add(b->started, 1);
    ssize_t n = edo_fs_pwrite(b->fd, buf, BLOCK, (off_t)b->index * BLOCK);
    if (n != BLOCK) {
        b->rc = n < 0 ? (int)n : -EIO;
        return NULL;
    }
    n = edo_fs_pread(b->fd, back, BLOCK, (off_t)b->index * BLOCK);
    b->rc = n == BLOCK && memcmp(buf, back, BLOCK) == 0 ? 0 : -EIO;
    return NULL;
}

typedef struct record_reader {
    int fd;
    uint64_t got;
    atomic_int *started;
    ssize_t rc;
} record_reader;

static void *record_task(void *arg)
{
    record_reader *r = arg;
    atomic_fetch_add(r->started, 1);
    r->rc = edo_fs_pread(r->fd, &r->got, sizeof r->got, -1);
    return NULL;
}

static void *overflow_root(void *arg)
{
    int n = (int)INT(arg);
    char p[600];
    atomic_int started = 0;

    /* Writes then reads of distinct blocks: all spawned before any runs, so one scheduler
     * turn queues them all. */
    int fd = (int)CHECK_OK(edo_fs_open(in_scratch(p, sizeof p, "blocks"), O_RDWR | O_CREAT, 0600));
    blockio *b = calloc((size_t)n, sizeof *b);
    edo_task **t = calloc((size_t)n, sizeof *t);
    CHECK(b && t);
    for (int i = 0; i < n; i++) {
        b[i] = (blockio){ .fd = fd, .index = i, .started = &started };
        CHECK_OK(edo_spawn(&t[i], block_task, &b[i]));
    }
    for (int i = 0; i < n; i++) {
        CHECK_OK(edo_join(t[i], NULL));
        CHECK_OK(b[i].rc);
    }
    CHECK_OK(edo_fs_close(fd));
    pattern_verify(p, 77, (size_t)n * BLOCK);
    free(b);

    /* Reads that stay in flight until the data comes: every reader waits on one FIFO, then
     * n records of 8 bytes arrive (each write atomic, each read takes one whole record);
     * every record must reach exactly one reader. */
    CHECK_SYS(mkfifo(in_scratch(p, sizeof p, "records"), 0600));
    fd = (int)CHECK_OK(edo_fs_open(p, O_RDWR, 0));
    record_reader *r = calloc((size_t)n, sizeof *r);
    CHECK(r != NULL);
    atomic_store(&started, 0);
    for (int i = 0; i < n; i++) {
        r[i] = (record_reader){ .fd = fd, .started = &started };
        CHECK_OK(edo_spawn(&t[i], record_task, &r[i]));
    }
    WAIT_UNTIL(atomic_load(&started) == n, 20000);
    for (int i = 0; i < n; i++)
        test_wait_parked(t[i], EDO_WAIT_READ); /* all of them waiting at once */
    for (int i = 0; i < n; i++) {
        uint64_t rec = pattern_word(5, (uint64_t)i);
        CHECK_EQ(write(fd, &rec, sizeof rec), (ssize_t)sizeof rec);
    }
    uint8_t *seen = calloc((size_t)n, 1);
    CHECK(seen != NULL);
    for (int i = 0; i < n; i++) {
        CHECK_OK(edo_join(t[i], NULL));
        CHECK_EQ(r[i].rc, (ssize_t)sizeof(uint64_t));
        int which = -1;
        for (int k = 0; k < n && which < 0; k++)
            if (pattern_word(5, (uint64_t)k) == r[i].got)
                which = k;
        CHECK_MSG(which >= 0, "reader %d got a record never written", i);
        CHECK_MSG(!seen[which], "record %d read twice", which);
        seen[which] = 1;
    }
    char rest[16];
    CHECK_EQ(fifo_drain(fd, rest, sizeof rest), 0u);
    CHECK_OK(edo_fs_close(fd));
    free(seen);
    free(r);
    free(t);
    return NULL;
}

static void case_ring_overflow(void)
{
    scratch_make();
    /* More than a ring's 256 submission entries in one turn, and in the release build
     * more reads in flight than its 4096 completion entries. Under epoll the FIFO readers
     * each hold a pool thread: a pool smaller than n shows that calls waiting in line for
     * a thread are not lost either. TSan runs fewer. */
    int n = TEST_SCALE(5000, 2000, 300);
    edo_runtime_opts o = { .blocking_threads = TEST_SCALE(256, 256, 100) };
    test_run_opts(&o, overflow_root, VAL(n));
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks aborted in the middle of copies                                                    */

typedef struct mid_copy {
    const char *from;
    char to[600];
    uint64_t size;
    uint64_t copied; /* reported written, in order from 0 */
    int rc;
    int closed;
} mid_copy;

static void *mid_copy_task(void *arg)
{
    mid_copy *m = arg;
    /* The abort may come before anything is open. */
    int in = edo_fs_open(m->from, O_RDONLY, 0);
    if (in < 0) {
        CHECK_ERR(in, -ECANCELED);
        m->rc = in;
        m->closed = 2;
        return NULL;
    }
    int out = edo_fs_open(m->to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) {
        CHECK_ERR(out, -ECANCELED);
        m->rc = out;
        m->closed = 1 + (edo_fs_close(in) == 0);
        return NULL;
    }
    char *buf = malloc(64 * 1024);
    CHECK(buf != NULL);
    for (;;) {
        ssize_t n = edo_fs_pread(in, buf, 64 * 1024, -1);
        if (n <= 0) {
            m->rc = (int)n;
            break;
        }
        size_t put = 0;
        m->rc = edo_fs_pwrite_all(out, buf, (size_t)n, (off_t)m->copied, &put);
        m->copied += put;
        if (m->rc < 0)
            break;
    }
    free(buf);
    /* Closes run after the abort too. */
    m->closed = (edo_fs_close(in) == 0) + (edo_fs_close(out) == 0);
    return NULL;
}

static void *mid_root(void *arg)
{
    const char *from = arg;
    enum { COPIES = 16 };
    mid_copy m[COPIES];
    edo_task *t[COPIES];
    test_rng r = test_rng_new(3);
    int unopened = 0, cut = 0, whole = 0;
    struct stat src;
    CHECK_SYS(stat(from, &src));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < COPIES; i++) {
            m[i] = (mid_copy){ .from = from };
            char name[32];
            snprintf(name, sizeof name, "copy%d", i);
            in_scratch(m[i].to, sizeof m[i].to, name);
            CHECK_OK(edo_spawn(&t[i], mid_copy_task, &m[i]));
        }
        for (int i = 0; i < COPIES; i++) {
            CHECK_OK(edo_sleep((int64_t)test_rng_range(&r, 0, 3)));
            edo_abort(t[i]);
        }
        for (int i = 0; i < COPIES; i++) {
            int rc = edo_join(t[i], NULL);
            CHECK(rc == 0 || rc == -EDO_EABORTED);
            CHECK(m[i].rc == 0 || m[i].rc == -ECANCELED);
            CHECK_EQ(m[i].closed, 2);
            /* What was reported written is exactly what the file holds, and it is right. */
            struct stat st;
            if (stat(m[i].to, &st) < 0) {
                CHECK_EQ(errno, ENOENT); /* aborted before it was made */
                CHECK_EQ(m[i].copied, 0u);
                unopened++;
                continue;
            }
            if (m[i].copied == (uint64_t)src.st_size)
                whole++;
            else
                cut++;
            CHECK_EQ((uint64_t)st.st_size, m[i].copied);
            CHECK_EQ(m[i].copied % 8, 0u); /* 64 KiB reads of a file of 8-byte words */
            int fd = (int)CHECK_SYS(open(m[i].to, O_RDONLY | O_CLOEXEC));
            char *buf = malloc(m[i].copied + 1);
            CHECK(buf != NULL);
            CHECK_EQ(read(fd, buf, m[i].copied + 1), (ssize_t)m[i].copied);
            CHECK(pattern_check(11, 0, buf, m[i].copied) == SIZE_MAX);
            free(buf);
            close(fd);
            CHECK_SYS(unlink(m[i].to));
        }
    }
    printf("    %d copies aborted before their files were open, %d in the middle, %d finished "
           "first\n",
           unopened, cut, whole);
    return NULL;
}

static void case_abort_mid_copy(void)
{
    scratch_make();
    char from[600];
    in_scratch(from, sizeof from, "src");
    pattern_file(from, 11, (size_t)TEST_SCALE(16, 8, 4) << 20);
    test_run_fds_closed(mid_root, from);
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* stdin and stdout through edo_io_wrap: pipes and a regular file                           */

#define STDIO_BYTES (1 << 20)

static void *pipe_feeder(void *arg)
{
    int fd = (int)INT(arg);
    char *buf = malloc(STDIO_BYTES);
    CHECK(buf != NULL);
    pattern_fill(21, 0, buf, STDIO_BYTES);
    size_t off = 0;
    while (off < STDIO_BYTES) { /* in uneven pieces, so the reader waits now and then */
        size_t n = STDIO_BYTES - off < 7000 ? STDIO_BYTES - off : 7000;
        ssize_t w = write(fd, buf + off, n);
        CHECK_SYS(w);
        off += (size_t)w;
    }
    free(buf);
    close(fd);
    return NULL;
}

/* Reads from src to its end with rd (which returns -errno on failure), with room for a
 * byte more than STDIO_BYTES so that a longer stream shows, and checks that it got
 * exactly STDIO_BYTES of pattern salt. */
static void read_stdio_bytes(ssize_t (*rd)(void *src, void *buf, size_t len), void *src,
                             uint64_t salt)
{
    char *buf = malloc(STDIO_BYTES + 1);
    CHECK(buf != NULL);
    size_t got = 0;
    ssize_t n;
    while ((n = rd(src, buf + got, STDIO_BYTES + 1 - got)) > 0)
        got += (size_t)n;
    CHECK_OK(n);
    CHECK_EQ(got, (size_t)STDIO_BYTES);
    CHECK(pattern_check(salt, 0, buf, got) == SIZE_MAX);
    free(buf);
}

static ssize_t read_raw(void *src, void *buf, size_t len)
{
    ssize_t n = read((int)INT(src), buf, len);
    return n < 0 ? -errno : n;
}

static ssize_t read_io(void *src, void *buf, size_t len)
{
    return edo_read(src, buf, len);
}

static void *pipe_drainer(void *arg)
{
    read_stdio_bytes(read_raw, arg, 22);
    close((int)INT(arg));
    return NULL;
}

/* Reads stdin to its end through edo and checks it holds pattern 21. */
static void *stdin_root(void *arg)
{
    edo_io *in;
    CHECK_OK(edo_io_wrap(&in, dup(STDIN_FILENO)));
    read_stdio_bytes(read_io, in, 21);
    CHECK_OK(edo_close(in));
    (void)arg;
    return NULL;
}

static void *stdout_root(void *arg)
{
    edo_io *out;
    CHECK_OK(edo_io_wrap(&out, dup(STDOUT_FILENO)));
    char *buf = malloc(STDIO_BYTES);
    CHECK(buf != NULL);
    pattern_fill(22, 0, buf, STDIO_BYTES);
    size_t done = 0;
    CHECK_OK(edo_write_all(out, buf, STDIO_BYTES, &done));
    CHECK_EQ(done, (size_t)STDIO_BYTES);
    free(buf);
    CHECK_OK(edo_close(out));
    (void)arg;
    return NULL;
}

static void case_stdio(void)
{
    scratch_make();
    fflush(stdout);
    int saved_in = (int)CHECK_SYS(dup(STDIN_FILENO));
    int saved_out = (int)CHECK_SYS(dup(STDOUT_FILENO));
    int p[2];
    pthread_t th;

    /* stdin from a pipe, fed by another thread. */
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    CHECK_SYS(dup2(p[0], STDIN_FILENO));
    close(p[0]);
    CHECK_EQ(pthread_create(&th, NULL, pipe_feeder, VAL(p[1])), 0);
    test_run(stdin_root, NULL);
    CHECK_EQ(pthread_join(th, NULL), 0);

    /* stdin from a regular file: edo_io_wrap takes it and reads it directly. */
    char path[600];
    pattern_file(in_scratch(path, sizeof path, "stdin"), 21, STDIO_BYTES);
    int fd = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    CHECK_SYS(dup2(fd, STDIN_FILENO));
    close(fd);
    test_run(stdin_root, NULL);

    /* stdout to a pipe, drained by another thread. */
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    CHECK_SYS(dup2(p[1], STDOUT_FILENO));
    close(p[1]);
    CHECK_EQ(pthread_create(&th, NULL, pipe_drainer, VAL(p[0])), 0);
    test_run(stdout_root, NULL);
    CHECK_SYS(dup2(saved_out, STDOUT_FILENO)); /* the last writer: the drainer sees EOF */
    CHECK_EQ(pthread_join(th, NULL), 0);

    CHECK_SYS(dup2(saved_in, STDIN_FILENO));
    close(saved_in);
    close(saved_out);
    scratch_remove();
}

/* ---------------------------------------------------------------------------------------- */
/* Pool threads take no signals: one that edo_signal_wait took over after the pool's       */
/* threads started still reaches the waiting task, not a pool thread's default action.      */

static void *sig_waiter(void *arg)
{
    int sig = SIGUSR1;
    return VAL(edo_signal_wait(&sig, 1));
}

static void *signal_root(void *arg)
{
    edo_fs_entry *ents;
    size_t n;
    for (int i = 0; i < 8; i++) { /* a few pool threads, started before the signal is taken */
        CHECK_OK(edo_fs_list("/", &ents, &n));
        edo_fs_list_free(ents);
    }
    edo_task *t;
    CHECK_OK(edo_spawn(&t, sig_waiter, NULL));
    test_wait_parked(t, EDO_WAIT_SIGNAL);
    CHECK_SYS(kill(getpid(), SIGUSR1));
    void *res;
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), SIGUSR1);
    (void)arg;
    return NULL;
}

static void case_pool_signals(void)
{
    /* Nothing blocked beforehand: the runtime's threads, the pool's included, and this one
     * while it is in edo_block_on must all block the signal by the time the waiter parks. */
    test_run(signal_root, NULL);
}

/* Reads the page cache answers at once (made on the worker), reads it cannot (dropped
 * pages, O_DIRECT: they go to the ring or the pool), and a task that only ever reads cached
 * data still lets the others run. */
static atomic_bool reading_done;

static void *ticker(void *arg)
{
    atomic_int *ticks = arg;
    while (!atomic_load(&reading_done)) {
        atomic_fetch_add(ticks, 1);
        CHECK_OK(edo_yield());
    }
    return NULL;
}

static void *cached_root(void *arg)
{
    enum { SIZE = 1 << 20, NREADS = 20000 };
    char p[600];
    const char *file = in_scratch(p, sizeof p, "cached");
    pattern_file(file, 21, SIZE);
    int fd = (int)CHECK_OK(edo_fs_open(file, O_RDONLY, 0));
    char *buf = malloc(BLOCK);
    CHECK(buf != NULL);

    /* Fairness on one worker: the reader never has to wait for the disk, yet the ticker
     * keeps running. */
    atomic_int ticks = 0;
    atomic_store(&reading_done, false);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, ticker, &ticks));
    int at_start = atomic_load(&ticks);
    for (int i = 0; i < NREADS; i++) {
        uint64_t off = (uint64_t)(i * 7919 % (SIZE / BLOCK)) * BLOCK;
        CHECK_EQ(edo_fs_pread(fd, buf, BLOCK, (off_t)off), BLOCK);
        CHECK(pattern_check(21, off, buf, BLOCK) == SIZE_MAX);
    }
    int during = atomic_load(&ticks) - at_start;
    atomic_store(&reading_done, true);
    CHECK_OK(edo_join(t, NULL));
    printf("    %d cached 4 KiB reads; a task on the same worker ran %d times meanwhile\n", NREADS,
           during);
    CHECK_GT(during, 10);

    /* Pages dropped from the cache (on a disk; tmpfs keeps them): read from the disk. */
    drop_cache(file);
    char *all = malloc(SIZE);
    CHECK(all != NULL);
    CHECK_OK(edo_fs_pread_exact(fd, all, SIZE, 0, NULL));
    CHECK(pattern_check(21, 0, all, SIZE) == SIZE_MAX);
    CHECK_OK(edo_fs_close(fd));

    /* O_DIRECT, where the file system has it. */
    int dfd = edo_fs_open(file, O_RDONLY | O_DIRECT, 0);
    if (dfd == -EINVAL) {
        printf("    O_DIRECT: skipped, the file system under %s refuses it\n", scratch);
    } else {
        CHECK_OK(dfd);
        void *aligned = NULL;
        CHECK_OK(-posix_memalign(&aligned, BLOCK, 64 * BLOCK));
        for (int i = 0; i < 16; i++) {
            uint64_t off = (uint64_t)(i * 37 % (SIZE / BLOCK / 64)) * 64 * BLOCK;
            CHECK_EQ(edo_fs_pread(dfd, aligned, 64 * BLOCK, (off_t)off), 64 * BLOCK);
            CHECK(pattern_check(21, off, aligned, 64 * BLOCK) == SIZE_MAX);
        }
        free(aligned);
        CHECK_OK(edo_fs_close(dfd));
    }
    free(all);
    free(buf);
    (void)arg;
    return NULL;
}

static void case_cached_reads(void)
{
    run_in_scratch(&(edo_runtime_opts){ .workers = 1 }, cached_root);
}

/* A task that sleeps 10 ms at a time until reading_done, keeping its worst lateness. */
static void *sleeper(void *arg)
{
    int64_t *worst = arg;
    while (!atomic_load(&reading_done)) {
        int64_t t0 = test_clock_us();
        CHECK_OK(edo_sleep(10));
        int64_t late = test_clock_us() - t0 - 10000;
        if (late > *worst)
            *worst = late;
    }
    return NULL;
}

/* One read of 256 MiB that the page cache holds, and one write as large, on one worker with
 * a ticker and a sleeper. The read is made on the worker in pieces, and the ticker runs and
 * the sleeper's timer fires between them, so it never holds its worker for long (made in one
 * go it held it for most of a second). The write leaves the worker free: in pieces on the
 * ring (io_uring), or in one call on the pool (epoll). */
static void *big_root(void *arg)
{
    /* Pieces of 1 MiB, a quarter of which at least must let the ticker run (TSan: a
     * smaller file; checking its pattern is slow there). */
    enum { SIZE = TEST_SCALE(256, 256, 64) << 20, MIN_TURNS = (SIZE >> 20) / 4 };
    char p[600], q[600];
    const char *file = in_scratch(p, sizeof p, "big"), *copy = in_scratch(q, sizeof q, "copy");
    pattern_file(file, 23, SIZE); /* just written: in the page cache */
    char *all = malloc(SIZE);
    CHECK(all != NULL);
    int fd = (int)CHECK_OK(edo_fs_open(file, O_RDONLY, 0));
    int out = (int)CHECK_OK(edo_fs_open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0644));

    atomic_int ticks = 0;
    atomic_store(&reading_done, false);
    int64_t worst_us = 0;
    edo_task *t, *sl;
    CHECK_OK(edo_spawn(&t, ticker, &ticks));
    CHECK_OK(edo_spawn(&sl, sleeper, &worst_us));
    CHECK_OK(edo_yield()); /* the ticker is running, the sleeper asleep */
    int before = atomic_load(&ticks);
    int64_t t0 = test_clock_us();
    CHECK_EQ(edo_fs_pread(fd, all, SIZE, 0), SIZE);
    int during_read = atomic_load(&ticks) - before;
    before = atomic_load(&ticks);
    CHECK_EQ(edo_fs_pwrite(out, all, SIZE, 0), SIZE);
    int during_write = atomic_load(&ticks) - before;
    int64_t transfer_us = test_clock_us() - t0;
    atomic_store(&reading_done, true);
    CHECK_OK(edo_join(t, NULL));
    CHECK_OK(edo_join(sl, NULL));
    printf("    a task on the same worker ran %d times during one %d MiB read of cached data, "
           "%d times during one %d MiB write; a 10 ms sleep woke at worst %.1f ms late\n",
           during_read, SIZE >> 20, during_write, SIZE >> 20, (double)worst_us / 1000);
    size_t bad = pattern_check(23, 0, all, SIZE);
    CHECK_MSG(bad == SIZE_MAX, "wrong word at byte %zu", bad * 8);
    CHECK_GE(during_read, MIN_TURNS);
    CHECK_GE(during_write, MIN_TURNS);
    /* The sleeper's timer is looked at between pieces (a piece is a millisecond or less),
     * so it wakes late by a piece, not by the whole transfer, which held the worker
     * throughout. Relative to the transfer: on a loaded machine both stretch. */
    CHECK_MSG(worst_us < 500000 || worst_us < transfer_us / 4,
              "a 10 ms sleep woke %lld ms late in a %lld ms transfer", (long long)worst_us / 1000,
              (long long)transfer_us / 1000);
    CHECK_OK(edo_fs_close(fd));
    CHECK_OK(edo_fs_close(out));
    pattern_verify(copy, 23, SIZE);
    free(all);
    (void)arg;
    return NULL;
}

static void case_big_cached_transfers(void)
{
    run_in_scratch(&(edo_runtime_opts){ .workers = 1 }, big_root);
}

/* A pipe that holds less than asked: the read returns what it holds at once (it once went
 * on for the rest, and came back only when the writer closed). A thread closes the write
 * end if the read is still waiting after 30 s. */
typedef struct pipe_guard {
    int wfd;
    atomic_bool read_back, closed;
} pipe_guard;

static void *pipe_closer(void *arg)
{
    pipe_guard *g = arg;
    int64_t until = test_clock_ms() + 30000;
    while (!atomic_load(&g->read_back) && test_clock_ms() < until)
        test_sleep_us(1000);
    if (!atomic_load(&g->read_back))
        atomic_store(&g->closed, true);
    CHECK_SYS(close(g->wfd));
    return NULL;
}

static void *pipe_root(void *unused)
{
    int fds[2];
    CHECK_SYS(pipe2(fds, O_CLOEXEC));
    pipe_guard g = { .wfd = fds[1] };
    CHECK_EQ(write(fds[1], "hello", 5), 5);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, pipe_closer, &g), 0);
    char buf[100];
    CHECK_EQ(edo_fs_pread(fds[0], buf, sizeof buf, -1), 5);
    atomic_store(&g.read_back, true);
    CHECK_MSG(!atomic_load(&g.closed), "the read waited for the writer to close");
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(edo_fs_pread(fds[0], buf, sizeof buf, -1), 0); /* closed: the end */
    CHECK_OK(edo_fs_close(fds[0]));
    (void)unused;
    return NULL;
}

static const test_root case_pipe_short_read = { .fn = pipe_root };

static const test_case cases[] = {
    TEST_CASE(case_outside_task),
    TEST_CASE(case_read_write),
    TEST_CASE(case_stat),
    TEST_CASE(case_names),
    TEST_CASE(case_list),
    TEST_CASE(case_whole_files),
    TEST_CASE(case_refused),
    TEST_CASE(case_copy_256m),
    TEST_CASE(case_many_readers),
    TEST_CASE(case_cancel_inflight),
    TEST_CASE(case_cancel_queued),
    TEST_CASE(case_shutdown_queued),
    TEST_CASE(case_ring_overflow),
    TEST_CASE(case_abort_mid_copy),
    TEST_CASE(case_stdio),
    TEST_CASE(case_pipe_short_read),
    TEST_CASE(case_pool_signals),
    TEST_CASE_BACKENDS(case_cached_reads),
    TEST_CASE_BACKENDS(case_big_cached_transfers),
};

TEST_MAIN(cases)
